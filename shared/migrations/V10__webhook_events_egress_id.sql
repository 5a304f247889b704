-- `roomtape recordings show` (and the API) list the events applied to one egress.
CREATE INDEX webhook_events_egress_id_idx ON webhook_events ((payload -> 'egressInfo' ->> 'egressId'));
