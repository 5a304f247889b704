-- When a start command was sent, at the latest its sender's stamp allows (CONTRACTS §4:
-- milliseconds from x-roomtape-sent-at-ms, else the end of the AMQP timestamp's second, else when
-- a processor first saw it). A stop for the room cancels a pending start only if the start was
-- sent before the stop. NULL for commands stored before this column existed: any stop cancels them.
ALTER TABLE recording_commands ADD COLUMN sent_at TIMESTAMPTZ;
-- room_stop_requests.requested_at holds from now on when the room's latest stop was sent (at the
-- earliest its stamp allows), not when a processor handled it.
