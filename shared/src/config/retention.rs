//! How long finished recordings are kept: read by the processor, whose sweeper deletes what is
//! past its age, and by `roomtape recordings sweep`, whose dry run lists the same set.

use std::time::Duration;

use super::{ConfigError, Env};

const RULES_VAR: &str = "RECORDING_RETENTION";

/// `RECORDING_RETENTION`: comma-separated `pattern=age` rules, e.g. `class-*=90d, *=30d`. A
/// final recording (`ready`, `failed`, `aborted`) is deleted once it ended longer ago than the
/// age of the first rule whose room-name pattern (`*`, `?`) matches its room; a room no rule
/// matches is kept. Empty (the default): nothing is deleted by itself.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RetentionRules {
    rules: Vec<(glob::Pattern, Duration)>,
}

impl RetentionRules {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let text = env.get(RULES_VAR).unwrap_or_default();
        Self::parse(text).map_err(|reason| ConfigError::invalid(RULES_VAR, reason))
    }

    /// `class-*=90d, *=30d`; an error says which rule is malformed and why.
    pub fn parse(text: &str) -> Result<Self, String> {
        let rules = text
            .split(',')
            .map(str::trim)
            .filter(|rule| !rule.is_empty())
            .map(|rule| {
                let (pattern, age) = rule
                    .split_once('=')
                    .ok_or_else(|| format!("{rule:?} is not pattern=age (class-*=90d)"))?;
                let pattern = glob::Pattern::new(pattern.trim())
                    .map_err(|e| format!("{rule:?}: the pattern: {e}"))?;
                let age = humantime::parse_duration(age.trim())
                    .map_err(|e| format!("{rule:?}: the age: {e}"))?;
                if age.is_zero() {
                    return Err(format!("{rule:?}: an age of 0 would delete at once"));
                }
                Ok((pattern, age))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { rules })
    }

    /// One age for every room: `recordings sweep --older-than`.
    pub fn every_room(age: Duration) -> Self {
        let everything = glob::Pattern::new("*").expect("* is a valid pattern");
        Self {
            rules: vec![(everything, age)],
        }
    }

    /// How long a recording of `room` is kept; `None`: for ever.
    pub fn age_for(&self, room: &str) -> Option<Duration> {
        self.rule_for(room).map(|(_, age)| age)
    }

    /// The rule that keeps `room`'s recordings, as people write it; `None`: none does.
    pub fn rule_for(&self, room: &str) -> Option<(String, Duration)> {
        self.rules
            .iter()
            .find(|(pattern, _)| pattern.matches(room))
            .map(|(pattern, age)| (pattern.as_str().to_owned(), *age))
    }

    /// The shortest age: nothing that ended more recently is due.
    pub fn shortest(&self) -> Option<Duration> {
        self.rules.iter().map(|(_, age)| *age).min()
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The rules as people write them, for logs and the console.
    pub fn describe(&self) -> Vec<(String, Duration)> {
        self.rules
            .iter()
            .map(|(pattern, age)| (pattern.as_str().to_owned(), *age))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: Duration = Duration::from_secs(86_400);

    #[test]
    fn the_first_matching_rule_decides_and_unmatched_rooms_are_kept() {
        let rules = RetentionRules::parse("class-*=90d, *=30d").expect("valid");
        assert_eq!(rules.age_for("class-7"), Some(90 * DAY));
        assert_eq!(rules.age_for("lobby"), Some(30 * DAY));
        assert_eq!(rules.shortest(), Some(30 * DAY));
        let only_classes = RetentionRules::parse("class-*=90d").expect("valid");
        assert_eq!(only_classes.age_for("lobby"), None);
        assert_eq!(rules.rule_for("lobby"), Some(("*".to_owned(), 30 * DAY)));
        assert!(RetentionRules::parse("").expect("valid").is_empty());
        assert_eq!(
            RetentionRules::every_room(DAY).age_for("anything"),
            Some(DAY)
        );
    }

    #[test]
    fn a_malformed_rule_is_named() {
        for (text, expected) in [
            ("class-*", "is not pattern=age"),
            ("class-*=soon", "the age"),
            ("[=30d", "the pattern"),
            ("*=0s", "delete at once"),
        ] {
            let error = RetentionRules::parse(text).expect_err(text);
            assert!(error.contains(expected), "{text}: {error}");
        }
        let env = Env::from_pairs([(RULES_VAR, "x")]);
        let error = RetentionRules::from_env(&env).expect_err("invalid");
        assert!(error.to_string().contains(RULES_VAR), "{error}");
    }
}
