-- When a start command last sent StartRoomCompositeEgress in a way LiveKit may have acted on.
-- Set before the call (so a crash mid-call leaves it), cleared when LiveKit's answer shows that
-- nothing was started. While it is set the command never calls again: it only looks its egress
-- up, so one command starts at most one egress even when LiveKit's answer is lost.
ALTER TABLE recording_commands ADD COLUMN called_at TIMESTAMPTZ;
