-- A picture of each video recording (CONTRACTS §5 `thumbnail_url`): an image LiveKit's image
-- output wrote a few seconds in, or a frame roomtape took near 10 % of a file it did not start.
-- `thumbnail_url` is the image's public URL, built like `file_url`; `thumbnail_key` its object
-- key in the recording's bucket, which the API presigns for private buckets and delete removes.
-- Both stay NULL for audio-only recordings and for those finished before this column existed.
ALTER TABLE recordings ADD COLUMN thumbnail_url TEXT, ADD COLUMN thumbnail_key TEXT;
