//! Query-string values as people write them; each failure names its field (400).

use std::time::Duration;

use chrono::{DateTime, Utc};
use roomtape_shared::db::recordings::{Kind, Status};
use roomtape_shared::storage::MAX_PRESIGN;

use crate::error::ApiError;

/// Page size when `limit` is not given, and the largest allowed.
pub const DEFAULT_LIMIT: i64 = 50;
pub const MAX_LIMIT: i64 = 500;
/// How long a download link works when `expires` is not given.
pub const DEFAULT_EXPIRY: Duration = Duration::from_secs(3600);

/// A recording status (`starting` … `aborted`).
pub fn status(text: &str) -> Result<Status, ApiError> {
    text.parse().map_err(|e| ApiError::invalid("status", e))
}

/// A recording kind (`room_composite`, `participant`, `track_composite`, `track`, `web`).
pub fn kind(text: &str) -> Result<Kind, ApiError> {
    text.parse().map_err(|e| ApiError::invalid("kind", e))
}

/// An RFC 3339 time, or an age such as `7d` or `12h` before `now`.
pub fn since(text: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, ApiError> {
    instant("since", text, now)
}

/// The query value `field`: an RFC 3339 time, a date (`2026-01-31`, its midnight UTC), or an
/// age such as `7d` or `12h` before `now`.
pub fn instant(field: &str, text: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, ApiError> {
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Ok(at.with_timezone(&Utc));
    }
    if let Ok(day) = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Ok(day.and_time(chrono::NaiveTime::MIN).and_utc());
    }
    let invalid = || {
        ApiError::invalid(
            field,
            format!("{text:?} is neither an RFC 3339 time, a date nor an age such as 7d or 12h"),
        )
    };
    let age = humantime::parse_duration(text).map_err(|_| invalid())?;
    let age = chrono::Duration::from_std(age).map_err(|_| invalid())?;
    now.checked_sub_signed(age).ok_or_else(invalid)
}

/// A page size, 1 to [`MAX_LIMIT`].
pub fn limit(text: Option<&str>) -> Result<i64, ApiError> {
    let Some(text) = text else {
        return Ok(DEFAULT_LIMIT);
    };
    text.parse::<i64>()
        .ok()
        .filter(|n| (1..=MAX_LIMIT).contains(n))
        .ok_or_else(|| {
            ApiError::invalid(
                "limit",
                format!("{text:?} is not a number from 1 to {MAX_LIMIT}"),
            )
        })
}

/// The `next_cursor` of a previous page.
pub fn cursor(text: &str) -> Result<i64, ApiError> {
    text.parse::<i64>().ok().filter(|n| *n > 0).ok_or_else(|| {
        ApiError::invalid("cursor", format!("{text:?} is not a cursor this API gave"))
    })
}

/// How long a download link works: a duration such as `15m` or `1h`, at most 7 days.
pub fn expires(text: Option<&str>) -> Result<Duration, ApiError> {
    let Some(text) = text else {
        return Ok(DEFAULT_EXPIRY);
    };
    let expires = humantime::parse_duration(text)
        .map_err(|e| ApiError::invalid("expires", format!("{text:?}: {e}")))?;
    if expires.is_zero() || expires > MAX_PRESIGN {
        return Err(ApiError::invalid(
            "expires",
            "a download link lives from 1s to 7d",
        ));
    }
    Ok(expires)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(error: ApiError) -> String {
        match error {
            ApiError::InvalidRequest { field, .. } => field,
            other => panic!("{other}"),
        }
    }

    #[test]
    fn values_read_as_people_write_them_and_errors_name_the_field() {
        let now = Utc::now();
        assert_eq!(since("7d", now).ok(), Some(now - chrono::Duration::days(7)));
        assert_eq!(
            since("2026-01-02T03:04:05Z", now)
                .map(|t| t.to_rfc3339())
                .ok(),
            Some("2026-01-02T03:04:05+00:00".to_owned())
        );
        assert_eq!(field(since("yesterday", now).expect_err("bad")), "since");
        assert_eq!(
            instant("from", "2026-01-31", now)
                .map(|t| t.to_rfc3339())
                .ok(),
            Some("2026-01-31T00:00:00+00:00".to_owned())
        );
        assert_eq!(field(instant("to", "31/01", now).expect_err("bad")), "to");
        assert_eq!(limit(None).ok(), Some(DEFAULT_LIMIT));
        assert_eq!(limit(Some("2")).ok(), Some(2));
        for bad in ["0", "-1", "501", "ten"] {
            assert_eq!(field(limit(Some(bad)).expect_err(bad)), "limit");
        }
        assert_eq!(status("ready").ok(), Some(Status::Ready));
        assert_eq!(field(status("done").expect_err("bad")), "status");
        assert_eq!(kind("participant").ok(), Some(Kind::Participant));
        assert_eq!(field(kind("camera").expect_err("bad")), "kind");
        assert_eq!(field(cursor("abc").expect_err("bad")), "cursor");
        assert_eq!(expires(Some("15m")).ok(), Some(Duration::from_secs(900)));
        assert_eq!(field(expires(Some("8d")).expect_err("bad")), "expires");
        assert_eq!(field(expires(Some("0s")).expect_err("bad")), "expires");
    }
}
