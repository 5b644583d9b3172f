//! Message options (`MsgData.options`): a missing key means true.

use std::collections::BTreeMap;

/// `history`: stored with a seq. False: online only.
pub const HISTORY: &str = "history";
/// `persistent`: treated like `history`.
pub const PERSISTENT: &str = "persistent";
/// `offlinePush`.
pub const OFFLINE_PUSH: &str = "offlinePush";
/// `unreadCount`.
pub const UNREAD_COUNT: &str = "unreadCount";
/// `conversationUpdate`.
pub const CONVERSATION_UPDATE: &str = "conversationUpdate";
/// `senderSync`: pushed to the sender's other connections.
pub const SENDER_SYNC: &str = "senderSync";
/// `senderConversationUpdate`.
pub const SENDER_CONVERSATION_UPDATE: &str = "senderConversationUpdate";
/// `isNotNotification`: false routes the message to the `n_` notification conversation.
pub const IS_NOT_NOTIFICATION: &str = "isNotNotification";

/// A message's options.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options(pub BTreeMap<String, bool>);

impl Options {
    /// The option's value: absent means true.
    pub fn is(&self, key: &str) -> bool {
        self.0.get(key).copied().unwrap_or(true)
    }

    /// Sets an option.
    pub fn set(&mut self, key: &str, value: bool) {
        self.0.insert(key.to_owned(), value);
    }

    /// Whether the message is stored and takes a seq. Online-only messages (typing, all
    /// options off) are delivered but never stored.
    pub fn is_stored(&self) -> bool {
        self.is(HISTORY) && self.is(PERSISTENT)
    }

    /// Forces the options a content type never allows (typing, read receipts, legacy revoke).
    pub fn apply_content_type_overrides(&mut self, content_type: i32) {
        let forced_off: &[&str] = match content_type {
            // Typing: transient.
            113 => &[
                HISTORY,
                PERSISTENT,
                SENDER_SYNC,
                CONVERSATION_UPDATE,
                SENDER_CONVERSATION_UPDATE,
                UNREAD_COUNT,
                OFFLINE_PUSH,
            ],
            // Legacy revoke.
            111 => &[UNREAD_COUNT, OFFLINE_PUSH],
            // Read receipt.
            2200 => &[
                UNREAD_COUNT,
                OFFLINE_PUSH,
                CONVERSATION_UPDATE,
                SENDER_CONVERSATION_UPDATE,
            ],
            _ => &[],
        };
        for key in forced_off {
            self.set(key, false);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_key_means_true() {
        let options = Options::default();
        assert!(options.is(HISTORY));
        assert!(options.is_stored());
        let mut options = Options::default();
        options.set(HISTORY, false);
        assert!(!options.is_stored());
    }

    #[test]
    fn typing_is_never_stored() {
        let mut options = Options::default();
        options.apply_content_type_overrides(113);
        assert!(!options.is_stored());
        assert!(!options.is(OFFLINE_PUSH));
        let mut text = Options::default();
        text.apply_content_type_overrides(101);
        assert_eq!(text, Options::default());
    }
}
