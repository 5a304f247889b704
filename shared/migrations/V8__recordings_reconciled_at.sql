-- When reconciliation last asked LiveKit about a recording, so every unfinished recording gets
-- its turn and none is asked more than once per RECONCILE_AFTER.
ALTER TABLE recordings ADD COLUMN reconciled_at TIMESTAMPTZ;
