//! The replies of CONTRACTS §4; the worker sends them to `reply_to` with the command's
//! `correlation_id`.

use serde_json::{json, Value};

pub fn error(code: &str, message: impl std::fmt::Display) -> Value {
    json!({"ok": false, "error": {"code": code, "message": message.to_string()}})
}
