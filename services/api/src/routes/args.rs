//! Checks on the arguments clients send, shared by every route group. Each failure is 1001
//! with a message naming the field and what is wrong.

use std::collections::HashSet;

use serde::Deserialize;

use crate::openim::ApiError;

/// The longest user ID, in bytes (OpenIM's column size).
pub const MAX_USER_ID_BYTES: usize = 64;
/// The longest nickname, in bytes.
pub const MAX_NICKNAME_BYTES: usize = 255;
/// The longest face URL, in bytes.
pub const MAX_FACE_URL_BYTES: usize = 255;
/// The longest `ex`, in bytes.
pub const MAX_EX_BYTES: usize = 1024;
/// The most IDs one request may name.
pub const MAX_IDS_PER_REQUEST: usize = 1000;

/// Checks a user ID: non-empty, no `:`, at most [`MAX_USER_ID_BYTES`].
pub fn check_user_id(field: &str, user_id: &str) -> Result<(), ApiError> {
    if user_id.is_empty() {
        return Err(ApiError::args(format!("{field} is empty")));
    }
    if user_id.contains(':') {
        return Err(ApiError::args(format!("{field} {user_id:?} contains ':'")));
    }
    if user_id.len() > MAX_USER_ID_BYTES {
        return Err(ApiError::args(format!(
            "{field} is longer than {MAX_USER_ID_BYTES} bytes"
        )));
    }
    Ok(())
}

/// Checks a text field is at most `max` bytes.
pub fn check_length(field: &str, value: &str, max: usize) -> Result<(), ApiError> {
    if value.len() > max {
        return Err(ApiError::args(format!(
            "{field} is longer than {max} bytes"
        )));
    }
    Ok(())
}

/// Checks a receive option is 0, 1 or 2.
pub fn check_recv_opt(value: i32) -> Result<(), ApiError> {
    if (0..=2).contains(&value) {
        Ok(())
    } else {
        Err(ApiError::args(format!(
            "globalRecvMsgOpt {value} is not 0 (receive), 1 (refuse) or 2 (receive silently)"
        )))
    }
}

/// Checks a list of IDs: non-empty, at most [`MAX_IDS_PER_REQUEST`], each valid, no repeats.
pub fn check_id_list(field: &str, ids: &[String]) -> Result<(), ApiError> {
    if ids.is_empty() {
        return Err(ApiError::args(format!("{field} is empty")));
    }
    check_each(field, ids, check_user_id)
}

/// Checks a list of conversation IDs (empty allowed, often meaning "all"): at most
/// [`MAX_IDS_PER_REQUEST`], none empty, no repeats. Conversation IDs join two user IDs, so
/// the user-ID length limit does not apply.
pub fn check_conversation_ids(field: &str, ids: &[String]) -> Result<(), ApiError> {
    check_each(field, ids, |field, id| {
        if id.is_empty() {
            Err(ApiError::args(format!("{field} holds an empty ID")))
        } else {
            Ok(())
        }
    })
}

fn check_each(
    field: &str,
    ids: &[String],
    check_one: impl Fn(&str, &str) -> Result<(), ApiError>,
) -> Result<(), ApiError> {
    if ids.len() > MAX_IDS_PER_REQUEST {
        return Err(ApiError::args(format!(
            "{field} has {} IDs; at most {MAX_IDS_PER_REQUEST} per request",
            ids.len()
        )));
    }
    let mut seen = HashSet::with_capacity(ids.len());
    for id in ids {
        check_one(field, id)?;
        if !seen.insert(id.as_str()) {
            return Err(ApiError::args(format!("{field} names {id:?} twice")));
        }
    }
    Ok(())
}

/// OpenIM's `RequestPagination`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Pagination {
    /// The page, from 1.
    #[serde(rename = "pageNumber")]
    pub page_number: i32,
    /// Entries per page.
    #[serde(rename = "showNumber")]
    pub show_number: i32,
}

impl Pagination {
    /// (offset, limit), or 1001 for a page below 1 or a size outside 1..=1000.
    pub fn window(pagination: Option<&Self>) -> Result<(i64, i64), ApiError> {
        let pagination = pagination.ok_or_else(|| ApiError::args("pagination is missing"))?;
        if pagination.page_number < 1 {
            return Err(ApiError::args(format!(
                "pagination.pageNumber {} is below 1",
                pagination.page_number
            )));
        }
        if !(1..=1000).contains(&pagination.show_number) {
            return Err(ApiError::args(format!(
                "pagination.showNumber {} is not between 1 and 1000",
                pagination.show_number
            )));
        }
        let limit = i64::from(pagination.show_number);
        Ok((i64::from(pagination.page_number - 1) * limit, limit))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversation_ids_are_not_held_to_the_user_id_limit() {
        let long = format!("si_{}_{}", "a".repeat(64), "b".repeat(64));
        assert!(check_conversation_ids("conversationIDs", std::slice::from_ref(&long)).is_ok());
        assert!(check_conversation_ids("conversationIDs", &[]).is_ok());
        let twice = check_conversation_ids("conversationIDs", &[long.clone(), long]).unwrap_err();
        assert!(twice.detail.contains("twice"), "{twice}");
        let empty = check_conversation_ids("conversationIDs", &[String::new()]).unwrap_err();
        assert_eq!(empty.detail, "conversationIDs holds an empty ID");
    }
}
