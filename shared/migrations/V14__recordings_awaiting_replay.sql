-- A recording whose finished egress wrote to a bucket no storage profile names: its event is
-- dead-lettered once, and reconciliation leaves it alone (republishing it would only dead-letter
-- it again) until an operator configures the profile and replays the dead letters. Any update
-- that applies clears it.
ALTER TABLE recordings ADD COLUMN awaiting_replay BOOLEAN NOT NULL DEFAULT FALSE;

-- An egress started elsewhere may name a key with `.` or `..` segments: URLs resolve those away,
-- so such a file gets no public URL rather than a link to another object.
ALTER TABLE assets ALTER COLUMN playback_url DROP NOT NULL;
