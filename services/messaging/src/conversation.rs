//! Session types and OpenIM's conversation-ID rules.
//!
//! | session | chat conversation | notification twin |
//! |---|---|---|
//! | 1 single | `si_<a>_<b>` | `n_<a>_<b>` |
//! | 3 group | `sg_<groupID>` | `n_<groupID>` |
//! | 4 notification | `sn_<a>_<b>` | `n_<a>_<b>` |
//!
//! `<a>_<b>` is the two user IDs sorted byte-wise and joined with `_`. User IDs may contain `_`,
//! so a conversation's peer is never parsed back out of its ID.

use crate::Rejection;

/// A session type jetim accepts (2, OpenIM's disabled write-diffusion group, is refused).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionType {
    /// 1: one-to-one chat.
    Single,
    /// 3: group chat, one timeline per group.
    Group,
    /// 4: a notification account writing to a user.
    Notification,
}

impl SessionType {
    /// Parses OpenIM's number.
    pub fn from_number(number: i32) -> Result<Self, Rejection> {
        match number {
            1 => Ok(Self::Single),
            3 => Ok(Self::Group),
            4 => Ok(Self::Notification),
            other => Err(Rejection::Invalid(format!("unknown sessionType {other}"))),
        }
    }

    /// OpenIM's number.
    pub const fn number(self) -> i32 {
        match self {
            Self::Single => 1,
            Self::Group => 3,
            Self::Notification => 4,
        }
    }
}

/// The two users in sorted order.
fn sorted_pair<'a>(first: &'a str, second: &'a str) -> [&'a str; 2] {
    if first <= second {
        [first, second]
    } else {
        [second, first]
    }
}

/// The chat conversation a message between these parties belongs to.
pub fn chat_conversation_id(
    session: SessionType,
    send_id: &str,
    recv_id: &str,
    group_id: &str,
) -> String {
    // `join` sizes the string once; this runs for every send, twice.
    let prefix = match session {
        SessionType::Single => "si",
        SessionType::Group => return ["sg", group_id].join("_"),
        SessionType::Notification => "sn",
    };
    let [first, second] = sorted_pair(send_id, recv_id);
    [prefix, first, second].join("_")
}

/// The notification twin of a conversation: the part before the first `_` becomes `n`.
pub fn notification_twin(conversation_id: &str) -> String {
    match conversation_id.split_once('_') {
        Some((_, rest)) => format!("n_{rest}"),
        None => format!("n_{conversation_id}"),
    }
}

/// Who may be in a conversation, as far as its ID tells ([`members_by_id`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdMembers<'a> {
    /// A pair the user is one of: a single or notification chat (`si_`, `sn_` and the sorted
    /// pair), or a notification twin (`n_`) that names them.
    Pair,
    /// A group's conversation (`sg_<groupID>`), with the group's ID: only the group knows
    /// its members.
    Group(&'a str),
    /// A notification twin (`n_…`) that does not name the user: the twin of the group with
    /// this ID if there is one, else a pair without the user.
    GroupTwin(&'a str),
    /// A pair without the user, or no conversation ID at all.
    Outside,
}

/// What `conversation_id` tells of whether `user_id` may be in it. Reads that do more work
/// for a conversation that exists (waiting for it to be projected) ask this first and skip
/// [`IdMembers::Outside`], so that how long they take tells nobody whether two other users
/// have talked.
pub fn members_by_id<'a>(user_id: &str, conversation_id: &'a str) -> IdMembers<'a> {
    let names_user = |pair: &str| {
        let first = pair
            .strip_prefix(user_id)
            .and_then(|rest| rest.strip_prefix('_'))
            .is_some_and(|other| sorted_pair(user_id, other).join("_") == pair);
        let second = pair
            .strip_suffix(user_id)
            .and_then(|rest| rest.strip_suffix('_'))
            .is_some_and(|other| sorted_pair(other, user_id).join("_") == pair);
        first || second
    };
    if let Some(group) = conversation_id.strip_prefix("sg_") {
        return IdMembers::Group(group);
    }
    let pair = conversation_id
        .strip_prefix("si_")
        .or_else(|| conversation_id.strip_prefix("sn_"));
    if let Some(pair) = pair {
        return if names_user(pair) {
            IdMembers::Pair
        } else {
            IdMembers::Outside
        };
    }
    match conversation_id.strip_prefix("n_") {
        Some(rest) if names_user(rest) => IdMembers::Pair,
        Some(rest) if !rest.is_empty() => IdMembers::GroupTwin(rest),
        _ => IdMembers::Outside,
    }
}

/// Whether a conversation ID is a notification conversation (`n_…`).
pub fn is_notification_conversation(conversation_id: &str) -> bool {
    conversation_id.starts_with("n_")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_chats_sort_the_two_ids_byte_wise() {
        assert_eq!(
            chat_conversation_id(SessionType::Single, "bob", "alice", ""),
            "si_alice_bob"
        );
        assert_eq!(
            chat_conversation_id(SessionType::Single, "alice", "bob", ""),
            "si_alice_bob"
        );
        // Byte order: upper case sorts before lower case, as Go's sort.Strings.
        assert_eq!(
            chat_conversation_id(SessionType::Single, "b", "Z", ""),
            "si_Z_b"
        );
    }

    #[test]
    fn an_id_says_whether_a_pair_names_the_user_and_which_group_it_is() {
        use IdMembers::{Group, GroupTwin, Outside, Pair};
        for (user, conversation, expected) in [
            ("alice", "si_alice_bob", Pair),
            ("bob", "si_alice_bob", Pair),
            ("carol", "si_alice_bob", Outside),
            ("ali", "si_alice_bob", Outside),
            ("alice_bob", "si_alice_bob", Outside),
            // Underscores make a pair ambiguous: a_x with b, or a with x_b.
            ("a_x", "si_a_x_b", Pair),
            ("x_b", "si_a_x_b", Pair),
            ("b", "si_a_x_b", Pair),
            ("a", "si_a_x_b", Pair),
            ("x", "si_a_x_b", Outside),
            ("news", "sn_news_u1", Pair),
            ("u2", "sn_news_u1", Outside),
            ("alice", "sg_g1", Group("g1")),
            ("alice", "n_alice_bob", Pair),
            ("carol", "n_alice_bob", GroupTwin("alice_bob")),
            ("carol", "n_g1", GroupTwin("g1")),
            ("carol", "n_", Outside),
            ("carol", "si_bob_alice", Outside),
            ("alice", "si_bob_alice", Outside),
            ("alice", "xx_alice_bob", Outside),
            ("alice", "", Outside),
        ] {
            assert_eq!(
                members_by_id(user, conversation),
                expected,
                "{user} in {conversation}"
            );
        }
    }

    #[test]
    fn groups_and_notification_sessions_have_their_own_prefixes() {
        assert_eq!(
            chat_conversation_id(SessionType::Group, "a", "", "g1"),
            "sg_g1"
        );
        assert_eq!(
            chat_conversation_id(SessionType::Notification, "news", "u1", ""),
            "sn_news_u1"
        );
    }

    #[test]
    fn the_twin_replaces_only_the_first_part() {
        assert_eq!(notification_twin("si_a_b"), "n_a_b");
        assert_eq!(notification_twin("sg_g_1"), "n_g_1");
        assert_eq!(notification_twin("sn_x_y"), "n_x_y");
        assert!(is_notification_conversation("n_a_b"));
        assert!(!is_notification_conversation("si_a_b"));
    }

    #[test]
    fn session_two_and_unknown_types_are_refused() {
        assert!(SessionType::from_number(2).is_err());
        assert!(SessionType::from_number(0).is_err());
        assert_eq!(SessionType::from_number(3).unwrap(), SessionType::Group);
    }
}
