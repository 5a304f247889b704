//! The buckets recordings are written to: finding a file's profile, checking the object.

pub mod objects;
