//! Errors keep their causes as `source()`s; logs and command-line messages show the whole
//! chain with [`Chain`].

use std::error::Error;
use std::fmt;

/// Displays an error followed by each of its sources: `outer: cause: root cause`.
#[derive(Debug, Clone, Copy)]
pub struct Chain<'a>(pub &'a (dyn Error + 'static));

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(cause) = source {
            let text = cause.to_string();
            // Wrappers that only repeat their cause's text add nothing.
            if !text.is_empty() {
                write!(f, ": {text}")?;
            }
            source = cause.source();
        }
        Ok(())
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
}
