//! Usage (CONTRACTS §7 `GET /api/v1/usage`, `roomtape usage`): per group, the recordings of a
//! time range, the minutes they recorded, the bytes they wrote and still store, how many were
//! deleted, and an estimated cost from the prices an operator sets.
//!
//! Storage is billed by GB-month: the bytes stored at the end of each day of the range, summed
//! over the days, divided by 30 (and by 10⁹). Figures come from the `recording_usage` ledger,
//! which keeps a deleted recording's row, so what it wrote still counts.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Datelike, Duration, NaiveTime, Utc};

use crate::config::{ConfigError, Env};
use crate::db::usage::UsageRecord;

/// What every estimate says about itself.
pub const ESTIMATE_NOTE: &str = "estimated from the operator's prices (USAGE_PRICE_PER_EGRESS_MINUTE, USAGE_PRICE_PER_GB_MONTH, USAGE_STORAGE_PRICES): not a bill";

/// The longest range usage sums: it walks every day of it.
pub const MAX_RANGE: Duration = Duration::days(366 * 5);

const BYTES_PER_GB: f64 = 1e9;
const DAYS_PER_MONTH: f64 = 30.0;

/// How usage is grouped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupBy {
    Room,
    User,
    Stream,
    Kind,
    Day,
    Month,
}

impl GroupBy {
    pub const ALL: [Self; 6] = [
        Self::Room,
        Self::User,
        Self::Stream,
        Self::Kind,
        Self::Day,
        Self::Month,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Room => "room",
            Self::User => "user",
            Self::Stream => "stream",
            Self::Kind => "kind",
            Self::Day => "day",
            Self::Month => "month",
        }
    }

    fn by_time(self) -> bool {
        matches!(self, Self::Day | Self::Month)
    }
}

/// A `group_by` that names none of the six.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{given:?} is not one of {}", GroupBy::ALL.map(GroupBy::as_str).join(", "))]
pub struct UnknownGroupBy {
    given: String,
}

impl std::str::FromStr for GroupBy {
    type Err = UnknownGroupBy;

    fn from_str(text: &str) -> Result<Self, UnknownGroupBy> {
        Self::ALL
            .into_iter()
            .find(|g| g.as_str() == text)
            .ok_or_else(|| UnknownGroupBy {
                given: text.to_owned(),
            })
    }
}

/// What recording costs, as the operator says: `USAGE_PRICE_PER_EGRESS_MINUTE` (LiveKit's
/// egress minutes), `USAGE_PRICE_PER_GB_MONTH` (storage, every profile) and
/// `USAGE_STORAGE_PRICES` (`r2=0.015, storj=0.004`: per profile, overriding it), in
/// `USAGE_CURRENCY` (default `USD`). Unset prices count as 0; none set, no estimate.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Prices {
    pub per_egress_minute: Option<f64>,
    pub per_gb_month: Option<f64>,
    pub per_gb_month_by_profile: HashMap<String, f64>,
    pub currency: String,
}

impl Prices {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        crate::settings!(Self {
            per_egress_minute: price(env, "USAGE_PRICE_PER_EGRESS_MINUTE"),
            per_gb_month: price(env, "USAGE_PRICE_PER_GB_MONTH"),
            per_gb_month_by_profile: profile_prices(env),
            currency: Ok(env.get("USAGE_CURRENCY").unwrap_or("USD").to_owned()),
        })
    }

    /// Whether any price is set: without one there is nothing to estimate.
    pub fn any(&self) -> bool {
        self.per_egress_minute.is_some()
            || self.per_gb_month.is_some()
            || !self.per_gb_month_by_profile.is_empty()
    }

    fn storage(&self, profile: &str) -> f64 {
        self.per_gb_month_by_profile
            .get(profile)
            .copied()
            .or(self.per_gb_month)
            .unwrap_or_default()
    }
}

fn non_negative(var: &str, text: &str) -> Result<f64, ConfigError> {
    match text.trim().parse::<f64>() {
        Ok(value) if value.is_finite() && value >= 0.0 => Ok(value),
        _ => Err(ConfigError::invalid(
            var,
            format!("{text:?} is not a price (a number, 0 or more)"),
        )),
    }
}

fn price(env: &Env, var: &str) -> Result<Option<f64>, ConfigError> {
    env.get(var).map(|text| non_negative(var, text)).transpose()
}

fn profile_prices(env: &Env) -> Result<HashMap<String, f64>, ConfigError> {
    const VAR: &str = "USAGE_STORAGE_PRICES";
    let text = env.get(VAR).unwrap_or_default();
    text.split(',')
        .map(str::trim)
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (profile, price) = pair.split_once('=').ok_or_else(|| {
                ConfigError::invalid(VAR, format!("{pair:?} is not profile=price"))
            })?;
            Ok((profile.trim().to_owned(), non_negative(VAR, price)?))
        })
        .collect()
}

/// One group's figures.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct UsageGroup {
    /// The room, user, stream, kind, day (`2026-01-31`) or month (`2026-01`); `null` for
    /// recordings without a user or stream.
    pub key: Option<String>,
    /// Recordings that ended in the range.
    pub recordings: u64,
    /// Minutes they recorded (what LiveKit bills as egress minutes).
    pub minutes: f64,
    /// Bytes they wrote.
    pub bytes_written: i64,
    /// Bytes still stored at the end of the range: of their files for a room, user, stream or
    /// kind; of every recording's at the end of the day or month for `day` and `month`.
    pub bytes_stored: i64,
    /// How many of them were deleted by the end of the range.
    pub deleted: u64,
    /// Storage over the range: bytes stored at the end of each day, summed, / 30 / 10⁹.
    pub gb_months: f64,
    /// Minutes and GB-months at the configured prices: an estimate, not a bill; `null` when
    /// no price is set.
    pub estimated_cost: Option<f64>,
}

/// The usage of `[from, to)` grouped by `group_by`, groups in key order.
pub fn summarize(
    records: &[UsageRecord],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    group_by: GroupBy,
    prices: &Prices,
) -> Vec<UsageGroup> {
    let mut groups: BTreeMap<Option<String>, (UsageGroup, HashMap<String, f64>)> = BTreeMap::new();
    for record in records.iter().filter(|r| r.recorded_at >= from) {
        let (group, _) = groups
            .entry(key(group_by, record, record.recorded_at))
            .or_default();
        group.recordings += 1;
        group.minutes += record.duration_seconds / 60.0;
        group.bytes_written += record.bytes_written;
        if record.deleted_at.is_some_and(|at| at < to) {
            group.deleted += 1;
        } else if !group_by.by_time() {
            group.bytes_stored += record.bytes_written;
        }
    }
    // Each day's end in the range: what is stored then counts for that day.
    for day_end in day_ends(from, to) {
        let day = day_end - Duration::days(1);
        for record in records.iter().filter(|r| stored_at(r, day_end)) {
            let at = match group_by.by_time() {
                true => day,
                false => record.recorded_at,
            };
            let (group, by_profile) = groups.entry(key(group_by, record, at)).or_default();
            let gb_days = record.bytes_written as f64 / BYTES_PER_GB;
            let profile = record.storage_profile.clone().unwrap_or_default();
            *by_profile.entry(profile).or_default() += gb_days / DAYS_PER_MONTH;
            if group_by.by_time() && day_end == last_day_end(group_by, day, to) {
                group.bytes_stored += record.bytes_written;
            }
        }
    }
    groups
        .into_iter()
        .map(|(key, (mut group, by_profile))| {
            group.key = key;
            // From 0.0: an empty f64 sum is -0.0, which would print as "-0.000".
            group.gb_months = by_profile.values().fold(0.0, |total, gb| total + gb);
            group.estimated_cost = prices.any().then(|| {
                let minutes = group.minutes * prices.per_egress_minute.unwrap_or_default();
                let storage: f64 = by_profile
                    .iter()
                    .map(|(profile, gb_months)| gb_months * prices.storage(profile))
                    .sum();
                minutes + storage
            });
            group
        })
        .collect()
}

fn key(group_by: GroupBy, record: &UsageRecord, at: DateTime<Utc>) -> Option<String> {
    match group_by {
        GroupBy::Room => Some(record.room_name.clone()),
        GroupBy::User => record.user_id.clone(),
        GroupBy::Stream => record.stream_id.clone(),
        GroupBy::Kind => Some(record.kind.clone()),
        GroupBy::Day => Some(at.format("%Y-%m-%d").to_string()),
        GroupBy::Month => Some(at.format("%Y-%m").to_string()),
    }
}

/// Whether `record`'s bytes are stored at `at`: written by then and not deleted yet.
fn stored_at(record: &UsageRecord, at: DateTime<Utc>) -> bool {
    record.bytes_written > 0
        && record.recorded_at < at
        && record.deleted_at.is_none_or(|deleted| deleted >= at)
}

/// Every midnight (UTC) after `from` up to `to`: the end of each whole day of the range.
fn day_ends(from: DateTime<Utc>, to: DateTime<Utc>) -> impl Iterator<Item = DateTime<Utc>> {
    let first = (from.date_naive() + Duration::days(1))
        .and_time(NaiveTime::MIN)
        .and_utc();
    std::iter::successors(Some(first), |day| Some(*day + Duration::days(1)))
        .take_while(move |day| *day <= to)
}

/// The end of the last day of `day`'s group that is in the range: where `bytes_stored` of a
/// `day` or `month` group is read.
fn last_day_end(group_by: GroupBy, day: DateTime<Utc>, to: DateTime<Utc>) -> DateTime<Utc> {
    let next_group = match group_by {
        GroupBy::Month => {
            let (year, month) = match day.month() {
                12 => (day.year() + 1, 1),
                month => (day.year(), month + 1),
            };
            chrono::NaiveDate::from_ymd_opt(year, month, 1)
                .map(|first| first.and_time(NaiveTime::MIN).and_utc())
                .unwrap_or(to)
        }
        _ => day + Duration::days(1),
    };
    // The last midnight at or before `to`: the range's last whole day ends there.
    let last_in_range = to.date_naive().and_time(NaiveTime::MIN).and_utc();
    next_group.min(last_in_range)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(day: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, day, 12, 0, 0)
            .single()
            .expect("time")
    }

    fn record(id: &str, room: &str, day: u32, bytes: i64, deleted: Option<u32>) -> UsageRecord {
        UsageRecord {
            egress_id: id.into(),
            room_name: room.into(),
            kind: "room_composite".into(),
            stream_id: None,
            user_id: Some("u-1".into()),
            storage_profile: Some("default".into()),
            recorded_at: at(day),
            duration_seconds: 600.0,
            bytes_written: bytes,
            deleted_at: deleted.map(at),
        }
    }

    #[test]
    fn prices_read_as_operators_write_them_and_a_bad_one_is_named() {
        let prices = Prices::from_env(&Env::from_pairs([
            ("USAGE_PRICE_PER_EGRESS_MINUTE", "0.005"),
            ("USAGE_STORAGE_PRICES", "r2=0.015, storj=0.004"),
        ]))
        .expect("valid");
        assert!(prices.any());
        assert_eq!(prices.storage("r2"), 0.015);
        assert_eq!(prices.storage("default"), 0.0, "no price: 0");
        assert!(!Prices::from_env(&Env::default()).expect("none").any());
        for (var, value, expected) in [
            ("USAGE_PRICE_PER_GB_MONTH", "-1", "is not a price"),
            ("USAGE_PRICE_PER_EGRESS_MINUTE", "cheap", "is not a price"),
            ("USAGE_STORAGE_PRICES", "r2", "is not profile=price"),
        ] {
            let error = Prices::from_env(&Env::from_pairs([(var, value)])).expect_err(value);
            let text = error.to_string();
            assert!(text.contains(var) && text.contains(expected), "{text}");
        }
    }

    #[test]
    fn gb_months_sum_the_bytes_stored_at_each_days_end_over_thirty() {
        let from = Utc
            .with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
            .single()
            .expect("from");
        let to = Utc
            .with_ymd_and_hms(2026, 1, 11, 0, 0, 0)
            .single()
            .expect("to");
        // 3 GB written on the 1st, kept; 6 GB on the 5th, deleted on the 8th.
        let records = [
            record("a", "class", 1, 3_000_000_000, None),
            record("b", "class", 5, 6_000_000_000, Some(8)),
        ];
        let prices = Prices {
            per_egress_minute: Some(0.01),
            per_gb_month: Some(0.03),
            ..Prices::default()
        };
        let groups = summarize(&records, from, to, GroupBy::Room, &prices);
        assert_eq!(groups.len(), 1);
        let class = &groups[0];
        assert_eq!((class.recordings, class.deleted), (2, 1));
        assert_eq!(class.bytes_written, 9_000_000_000);
        assert_eq!(class.bytes_stored, 3_000_000_000);
        assert!((class.minutes - 20.0).abs() < 1e-9);
        // a: the ends of the 1st … 10th, 10 days × 3 GB; b: the 5th, 6th, 7th, 3 × 6 GB.
        let gb_days = 10.0 * 3.0 + 3.0 * 6.0;
        assert!((class.gb_months - gb_days / 30.0).abs() < 1e-9, "{class:?}");
        let cost = 20.0 * 0.01 + gb_days / 30.0 * 0.03;
        assert!((class.estimated_cost.expect("priced") - cost).abs() < 1e-9);

        let days = summarize(&records, from, to, GroupBy::Day, &Prices::default());
        let day = |key: &str| days.iter().find(|g| g.key.as_deref() == Some(key)).cloned();
        let fifth = day("2026-01-05").expect("the 5th");
        assert_eq!((fifth.recordings, fifth.bytes_stored), (1, 9_000_000_000));
        assert_eq!(
            day("2026-01-09").expect("the 9th").bytes_stored,
            3_000_000_000
        );
        assert_eq!(days.len(), 10, "one group per day of the range");
        assert_eq!(fifth.estimated_cost, None, "no prices, no estimate");
        let nothing_stored = [record("f", "lobby", 2, 0, None)];
        let lobby = summarize(&nothing_stored, from, to, GroupBy::Room, &prices);
        assert!(lobby[0].gb_months.is_sign_positive(), "{lobby:?}");
    }
}
