-- The SHA-256 of a start command's canonical JSON body, so a message_id reused with another body
-- is refused (idempotency_conflict) instead of answered with the first command's reply. NULL for
-- commands stored before this column existed: they are not compared.
ALTER TABLE recording_commands ADD COLUMN body_sha256 BYTEA;
