//! Events on `im.user.<userID>.account`: a user's registration and profile.

use serde::{Deserialize, Serialize};

use crate::event::Event;

/// `user.registered` v1: the first event of a user. Appended only onto an empty subject, so a
/// user ID is registered once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRegistered {
    /// The user ID.
    pub user_id: String,
    /// Display name.
    pub nickname: String,
    /// Avatar URL.
    pub face_url: String,
    /// Free-form extension data the app stores.
    pub ex: String,
    /// OpenIM's `appMangerLevel`: 1 ordinary, 2 app admin, 3 notification account, 4 robot.
    pub app_manger_level: i32,
    /// Receive option for all single chats: 0 receive, 1 refuse, 2 receive without push.
    pub global_recv_msg_opt: i32,
    /// Registration time, milliseconds since the epoch.
    pub create_time: i64,
}

impl Event for UserRegistered {
    const KIND: &'static str = "user.registered";
    const VERSION: u32 = 1;
}

/// `user.updated` v1: profile fields that changed; an absent field is unchanged.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserUpdated {
    /// The user ID.
    pub user_id: String,
    /// New display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nickname: Option<String>,
    /// New avatar URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub face_url: Option<String>,
    /// New extension data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ex: Option<String>,
    /// New receive option.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub global_recv_msg_opt: Option<i32>,
    /// New level (notification accounts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_manger_level: Option<i32>,
}

impl UserUpdated {
    /// Whether the update changes nothing.
    pub fn is_empty(&self) -> bool {
        self.nickname.is_none()
            && self.face_url.is_none()
            && self.ex.is_none()
            && self.global_recv_msg_opt.is_none()
            && self.app_manger_level.is_none()
    }

    /// Folds a later update into this one: later values win.
    pub fn merge(&mut self, later: Self) {
        self.nickname = later.nickname.or(self.nickname.take());
        self.face_url = later.face_url.or(self.face_url.take());
        self.ex = later.ex.or(self.ex.take());
        self.global_recv_msg_opt = later.global_recv_msg_opt.or(self.global_recv_msg_opt);
        self.app_manger_level = later.app_manger_level.or(self.app_manger_level);
    }
}

impl Event for UserUpdated {
    const KIND: &'static str = "user.updated";
    const VERSION: u32 = 1;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_update_stores_only_what_changed() {
        let update = UserUpdated {
            user_id: "u1".into(),
            nickname: Some("Ann".into()),
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_string(&update).unwrap(),
            r#"{"user_id":"u1","nickname":"Ann"}"#
        );
    }

    #[test]
    fn later_updates_win_when_folded() {
        let mut first = UserUpdated {
            user_id: "u1".into(),
            nickname: Some("Ann".into()),
            ex: Some("x".into()),
            ..Default::default()
        };
        first.merge(UserUpdated {
            user_id: "u1".into(),
            nickname: Some("Anna".into()),
            global_recv_msg_opt: Some(2),
            ..Default::default()
        });
        assert_eq!(first.nickname.as_deref(), Some("Anna"));
        assert_eq!(first.ex.as_deref(), Some("x"));
        assert_eq!(first.global_recv_msg_opt, Some(2));
    }
}
