//! Errors keep their causes as `source()`s; logs and command-line messages show the whole
//! chain with [`Chain`], redacted ([`crate::redact`]): a cause may quote what LiveKit sent.

use std::error::Error;
use std::fmt;

/// Displays an error followed by each of its sources: `outer: cause: root cause`, with
/// credentials (join tokens, signatures) redacted.
#[derive(Debug, Clone, Copy)]
pub struct Chain<'a>(pub &'a (dyn Error + 'static));

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut text = self.0.to_string();
        let mut source = self.0.source();
        while let Some(cause) = source {
            let cause_text = cause.to_string();
            // Wrappers that only repeat their cause's text add nothing.
            if !cause_text.is_empty() {
                text.push_str(": ");
                text.push_str(&cause_text);
            }
            source = cause.source();
        }
        f.write_str(&crate::redact::redact(&text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("could not publish")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn shows_every_cause() {
        let error = Outer(std::io::Error::other("connection reset"));
        assert_eq!(
            Chain(&error).to_string(),
            "could not publish: connection reset"
        );
    }

    #[test]
    fn tokens_quoted_by_a_cause_are_redacted() {
        let error = Outer(std::io::Error::other(
            "GET /rtc?access_token=eyJa.eyJb.c failed",
        ));
        assert_eq!(
            Chain(&error).to_string(),
            "could not publish: GET /rtc?access_token=[redacted] failed"
        );
    }
}
