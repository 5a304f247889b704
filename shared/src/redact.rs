//! Redaction of credentials in text that came from outside: LiveKit's error messages carry the
//! URLs the egress used, and those hold room-join tokens (`access_token=eyJ…`) and presigned S3
//! signatures. Everything roomtape derives from an event (rows, API answers, the console, logs,
//! metrics) goes through [`redact`]; the queue message and `webhook_events.payload` keep what
//! LiveKit sent, and whatever prints them redacts as it prints.

use std::borrow::Cow;

use serde_json::Value;

/// What a redacted value is replaced with.
pub const REDACTED: &str = "[redacted]";

/// Query parameters whose value is a credential (compared without case).
const SECRET_PARAMETERS: &[&str] = &[
    "access_token",
    "token",
    "auth",
    "authorization",
    "id_token",
    "refresh_token",
    "api_key",
    "apikey",
    "key",
    "secret",
    "client_secret",
    "password",
    "signature",
    "sig",
    "x-amz-signature",
    "x-amz-credential",
    "x-amz-security-token",
    "x-goog-signature",
    "x-goog-credential",
];

/// `text` with the value of every credential-bearing query parameter (`access_token=…`,
/// `X-Amz-Signature=…`) and every JWT-shaped string (`eyJ….….…`) replaced by [`REDACTED`].
pub fn redact(text: &str) -> Cow<'_, str> {
    let mut out = String::new();
    // Bytes of `text` already copied to `out`.
    let mut copied = 0;
    let mut at = 0;
    while at < text.len() {
        let span = jwt_at(text, at).or_else(|| parameter_value_at(text, at));
        match span {
            Some((start, end)) => {
                out.push_str(&text[copied..start]);
                out.push_str(REDACTED);
                copied = end;
                at = end;
            }
            None => at += text[at..].chars().next().map_or(1, char::len_utf8),
        }
    }
    match copied {
        0 => Cow::Borrowed(text),
        _ => {
            out.push_str(&text[copied..]);
            Cow::Owned(out)
        }
    }
}

/// `text` redacted, for an optional value.
pub fn redact_opt(text: Option<String>) -> Option<String> {
    text.map(|text| redact(&text).into_owned())
}

/// Every string in `value`, redacted in place.
pub fn redact_json(value: &mut Value) {
    match value {
        Value::String(text) => {
            if let Cow::Owned(redacted) = redact(text) {
                *text = redacted;
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact_json),
        Value::Object(map) => map.values_mut().for_each(redact_json),
        _ => {}
    }
}

/// A character of a base64url segment.
fn is_b64url(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_'
}

/// A character that may continue a name, so a match cannot start right after it.
fn is_word(byte: u8) -> bool {
    is_b64url(byte) || byte == b'.'
}

/// A JWT (`eyJ` header, `.`, payload, optionally `.` signature) starting at `at`.
fn jwt_at(text: &str, at: usize) -> Option<(usize, usize)> {
    let bytes = text.as_bytes();
    if !text[at..].starts_with("eyJ") || (at > 0 && is_word(bytes[at - 1])) {
        return None;
    }
    let segment_end =
        |from: usize| from + bytes[from..].iter().take_while(|b| is_b64url(**b)).count();
    let header_end = segment_end(at);
    if bytes.get(header_end) != Some(&b'.') {
        return None;
    }
    let payload_end = segment_end(header_end + 1);
    if payload_end == header_end + 1 {
        return None;
    }
    let end = match bytes.get(payload_end) {
        Some(b'.') => segment_end(payload_end + 1),
        _ => payload_end,
    };
    Some((at, end))
}

/// The value of a credential-bearing `name=value` starting at `at` (the name's first byte).
fn parameter_value_at(text: &str, at: usize) -> Option<(usize, usize)> {
    let bytes = text.as_bytes();
    // A JSON-escaped `&` (`\u0026`) separates parameters as well.
    let after_separator = text[..at].ends_with("\\u0026");
    if at > 0 && is_word(bytes[at - 1]) && !after_separator {
        return None;
    }
    let name = SECRET_PARAMETERS.iter().find(|name| {
        text.get(at..at + name.len())
            .is_some_and(|candidate| candidate.eq_ignore_ascii_case(name))
    })?;
    let value_start = at + name.len();
    if bytes.get(value_start) != Some(&b'=') {
        return None;
    }
    let value_start = value_start + 1;
    let value_len = bytes[value_start..]
        .iter()
        .take_while(|b| is_b64url(**b) || b"%+/=.~:".contains(b))
        .count();
    (value_len > 0).then_some((value_start, value_start + value_len))
}

#[cfg(test)]
mod tests {
    use super::*;

    const JWT: &str = "eyJhbGciOiJIUzI1NiJ9.eyJ2aWRlbyI6eyJyb29tSm9pbiI6dHJ1ZX19.c2lnbmF0dXJl";

    #[test]
    fn join_tokens_in_urls_are_redacted_wherever_they_are() {
        let error = format!("could not join wss://lk.example.com/rtc?access_token={JWT}&auto=1");
        assert_eq!(
            redact(&error),
            "could not join wss://lk.example.com/rtc?access_token=[redacted]&auto=1"
        );
        let bare = format!("token {JWT}, again: {JWT}.");
        assert_eq!(redact(&bare), "token [redacted], again: [redacted].");
    }

    #[test]
    fn presigned_signatures_and_credentials_are_redacted() {
        let url = "https://s3.example.com/b/k.mp4?X-Amz-Algorithm=AWS4-HMAC-SHA256\
                   &X-Amz-Credential=AKIA%2F20240101%2Fauto%2Fs3%2Faws4_request\
                   &X-Amz-Signature=abcdef0123&X-Amz-Expires=3600";
        assert_eq!(
            redact(url),
            "https://s3.example.com/b/k.mp4?X-Amz-Algorithm=AWS4-HMAC-SHA256\
             &X-Amz-Credential=[redacted]&X-Amz-Signature=[redacted]&X-Amz-Expires=3600"
        );
    }

    #[test]
    fn json_escaped_separators_and_nested_values_are_redacted() {
        let mut value = serde_json::json!({"error": "x?a=1\\u0026token=abc", "list": [
            {"url": "rtmp://h/app?sig=s3cr3t"}]});
        redact_json(&mut value);
        assert_eq!(
            value,
            serde_json::json!({"error": "x?a=1\\u0026token=[redacted]", "list": [
                {"url": "rtmp://h/app?sig=[redacted]"}]})
        );
    }

    #[test]
    fn ordinary_text_is_left_alone() {
        for text in [
            "egress failed: Start signal not received",
            "mytoken=abc and monkey=1, eyJ alone, eyJabc.",
            "recordings/standup/2024-01-01T000000.mp4",
            "",
        ] {
            assert!(matches!(redact(text), Cow::Borrowed(_)), "{text}");
        }
    }
}
