//! Checking a message's content against its content type.
//!
//! Content is UTF-8 JSON written and read by the clients; the server reads it only where
//! OpenIM does. So the checks are what a message of that type cannot do without (a text has a
//! `content` string, a location has coordinates) and never more, so that every message the
//! official SDKs produce is accepted.

use serde_json::Value;

use crate::Rejection;

/// The largest content jetim stores, in bytes.
pub const MAX_CONTENT_BYTES: usize = 64 * 1024;

/// The content types users may send.
pub fn is_user_content_type(content_type: i32) -> bool {
    matches!(content_type, 101..=120)
}

/// System (notification) content types, sent by the server and admins only.
pub fn is_system_content_type(content_type: i32) -> bool {
    (1000..=5000).contains(&content_type)
}

fn require_string(
    object: &serde_json::Map<String, Value>,
    key: &str,
    kind: &str,
) -> Result<(), Rejection> {
    match object.get(key) {
        Some(Value::String(_)) => Ok(()),
        Some(other) => Err(Rejection::Invalid(format!(
            "{kind} content: {key} must be a string, not {other}"
        ))),
        None => Err(Rejection::Invalid(format!("{kind} content has no {key}"))),
    }
}

fn require_number(
    object: &serde_json::Map<String, Value>,
    key: &str,
    kind: &str,
) -> Result<(), Rejection> {
    match object.get(key) {
        Some(Value::Number(_)) => Ok(()),
        _ => Err(Rejection::Invalid(format!(
            "{kind} content needs a numeric {key}"
        ))),
    }
}

/// Checks `content` for `content_type`; returns the parsed JSON.
pub fn check(content_type: i32, content: &[u8]) -> Result<Value, Rejection> {
    if content.is_empty() {
        return Err(Rejection::Invalid("content is empty".to_owned()));
    }
    if content.len() > MAX_CONTENT_BYTES {
        return Err(Rejection::Invalid(format!(
            "content is {} bytes; at most {MAX_CONTENT_BYTES}",
            content.len()
        )));
    }
    if !is_user_content_type(content_type) && !is_system_content_type(content_type) {
        return Err(Rejection::Invalid(format!(
            "unknown contentType {content_type}"
        )));
    }
    let value: Value = serde_json::from_slice(content)
        .map_err(|error| Rejection::Invalid(format!("content is not JSON: {error}")))?;
    let Value::Object(object) = &value else {
        return Err(Rejection::Invalid(
            "content must be a JSON object".to_owned(),
        ));
    };
    match content_type {
        101 => require_string(object, "content", "text")?,
        106 => require_string(object, "text", "at-text")?,
        109 => {
            require_number(object, "latitude", "location")?;
            require_number(object, "longitude", "location")?;
        }
        114 => {
            require_string(object, "text", "quote")?;
            if !matches!(object.get("quoteMessage"), Some(Value::Object(_))) {
                return Err(Rejection::Invalid(
                    "quote content needs a quoteMessage object".to_owned(),
                ));
            }
        }
        118 => require_string(object, "content", "markdown")?,
        system if is_system_content_type(system) => {
            require_string(object, "detail", "notification")?;
        }
        _ => {}
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_the_sdks_send_is_accepted() {
        assert!(check(101, br#"{"content":"hi"}"#).is_ok());
        assert!(
            check(
                102,
                br#"{"sourcePath":"","sourcePicture":{"uuid":"u","url":"https://p"}}"#
            )
            .is_ok()
        );
        assert!(check(106, br#"{"text":"@b hi","atUserList":["b"]}"#).is_ok());
        assert!(check(109, br#"{"description":"","longitude":1.5,"latitude":2}"#).is_ok());
        assert!(check(110, br#"{"data":"{}","description":"","extension":""}"#).is_ok());
        assert!(check(113, br#"{"msgTips":"typing"}"#).is_ok());
        assert!(check(114, br#"{"text":"re","quoteMessage":{"seq":1}}"#).is_ok());
        assert!(check(1400, br#"{"detail":"{}"}"#).is_ok());
    }

    #[test]
    fn content_that_cannot_work_is_refused_with_the_reason() {
        let refused = |content_type: i32, content: &[u8]| match check(content_type, content) {
            Err(Rejection::Invalid(reason)) => reason,
            other => panic!("{content_type}: {other:?}"),
        };
        assert_eq!(refused(101, b""), "content is empty");
        assert_eq!(
            refused(101, br#"{"text":"hi"}"#),
            "text content has no content"
        );
        assert_eq!(
            refused(101, br#"{"content":5}"#),
            "text content: content must be a string, not 5"
        );
        assert_eq!(
            refused(101, b"hi"),
            "content is not JSON: expected value at line 1 column 1"
        );
        assert_eq!(refused(101, br#""hi""#), "content must be a JSON object");
        assert_eq!(
            refused(109, br#"{"latitude":"north"}"#),
            "location content needs a numeric latitude"
        );
        assert_eq!(
            refused(114, br#"{"text":"re"}"#),
            "quote content needs a quoteMessage object"
        );
        assert_eq!(refused(999, br#"{}"#), "unknown contentType 999");
        let huge = format!(r#"{{"content":"{}"}}"#, "x".repeat(MAX_CONTENT_BYTES));
        assert!(refused(101, huge.as_bytes()).starts_with("content is "));
    }
}
