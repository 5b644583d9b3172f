//! Typed subjects: the only code in jetim that builds a subject string.
//!
//! Every ID goes through [`crate::escape`], so an ID holding `.`, `*`, `>` or a space can
//! never change a subject's shape or widen a filter.

use crate::escape::{TokenError, escape, unescape};

/// The name of the stream holding everything keyed by a conversation.
pub const CONVERSATION_STREAM: &str = "IM_CONV";
/// The name of the stream holding everything keyed by a user.
pub const USER_STREAM: &str = "IM_USER";

const CONVERSATION_PREFIX: &str = "im.conv";
const USER_PREFIX: &str = "im.user";

/// What a conversation subject holds. The last token of `im.conv.<conversationID>.<kind>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConversationKind {
    /// `msg`: the timeline. Each event carries the conversation's gapless seq.
    Timeline,
    /// `read`: read marks of the conversation's members.
    Read,
    /// `revoke`: revocations of timeline messages.
    Revoke,
    /// `delete`: messages deleted and conversations cleared, for one member or for everyone.
    Delete,
    /// `group`: a group's state (on its `sg_<groupID>` conversation): creation, members,
    /// roles, mutes, applications, info and dismissal.
    Group,
}

impl ConversationKind {
    /// The subject token for this kind.
    pub const fn token(self) -> &'static str {
        match self {
            Self::Timeline => "msg",
            Self::Read => "read",
            Self::Revoke => "revoke",
            Self::Delete => "delete",
            Self::Group => "group",
        }
    }

    fn from_token(token: &str) -> Option<Self> {
        match token {
            "msg" => Some(Self::Timeline),
            "read" => Some(Self::Read),
            "revoke" => Some(Self::Revoke),
            "delete" => Some(Self::Delete),
            "group" => Some(Self::Group),
            _ => None,
        }
    }
}

/// What a user subject holds. The last token of `im.user.<userID>.<kind>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UserKind {
    /// `account`: registration and profile changes. Its first event is the registration,
    /// appended only if the subject is empty, so a user ID is registered once.
    Account,
    /// `command`: the user's commands (OpenIM's `process_user_command_*`: favourites, etc.).
    Command,
    /// `config`: client configuration entries for the user.
    Config,
    /// `conversation`: the user's settings for their conversations.
    Conversation,
    /// `friend`: friend requests addressed to the user, and the user's friendships.
    Friend,
    /// `black`: the users the user blocks.
    Black,
}

impl UserKind {
    /// The subject token for this kind.
    pub const fn token(self) -> &'static str {
        match self {
            Self::Account => "account",
            Self::Command => "command",
            Self::Config => "config",
            Self::Conversation => "conversation",
            Self::Friend => "friend",
            Self::Black => "black",
        }
    }
}

/// The token standing for "every user" (app-wide settings): a lone `=`, which
/// [`crate::escape`] never produces, so it cannot collide with a user ID.
const APP_WIDE_TOKEN: &str = "=";

/// A full, valid subject in one of jetim's streams.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Subject {
    text: String,
    kind: SubjectKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum SubjectKind {
    Conversation(ConversationKind),
    User(UserKind),
}

impl Subject {
    /// `im.conv.<conversationID>.<kind>`.
    pub fn conversation(conversation_id: &str, kind: ConversationKind) -> Result<Self, TokenError> {
        let token = escape(conversation_id)?;
        Ok(Self {
            text: format!("{CONVERSATION_PREFIX}.{token}.{}", kind.token()),
            kind: SubjectKind::Conversation(kind),
        })
    }

    /// `im.user.<userID>.<kind>`.
    pub fn user(user_id: &str, kind: UserKind) -> Result<Self, TokenError> {
        let token = escape(user_id)?;
        Ok(Self {
            text: format!("{USER_PREFIX}.{token}.{}", kind.token()),
            kind: SubjectKind::User(kind),
        })
    }

    /// `im.user.=.config`: client configuration for every user, which a user's own entries
    /// override.
    pub fn app_config() -> Self {
        Self {
            text: format!(
                "{USER_PREFIX}.{APP_WIDE_TOKEN}.{}",
                UserKind::Config.token()
            ),
            kind: SubjectKind::User(UserKind::Config),
        }
    }

    /// The stream holding this subject.
    pub fn stream(&self) -> &'static str {
        match self.kind {
            SubjectKind::Conversation(_) => CONVERSATION_STREAM,
            SubjectKind::User(_) => USER_STREAM,
        }
    }

    /// `im.conv.<conversationID>.msg`, the conversation's timeline.
    pub fn timeline(conversation_id: &str) -> Result<Self, TokenError> {
        Self::conversation(conversation_id, ConversationKind::Timeline)
    }

    /// The subject as NATS sees it.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether this is a timeline subject, whose events carry a seq.
    pub fn is_timeline(&self) -> bool {
        self.kind == SubjectKind::Conversation(ConversationKind::Timeline)
    }
}

impl std::fmt::Display for Subject {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(&self.text)
    }
}

/// A filter matching one kind in every conversation: `im.conv.*.<kind>`.
pub fn every_conversation(kind: ConversationKind) -> String {
    format!("{CONVERSATION_PREFIX}.*.{}", kind.token())
}

/// A filter matching one kind for every user: `im.user.*.<kind>` (the app-wide `=` entries
/// included).
pub fn every_user(kind: UserKind) -> String {
    format!("{USER_PREFIX}.*.{}", kind.token())
}

/// A filter matching every subject of one conversation: `im.conv.<conversationID>.>`.
pub fn conversation_filter(conversation_id: &str) -> Result<String, TokenError> {
    Ok(format!(
        "{CONVERSATION_PREFIX}.{}.>",
        escape(conversation_id)?
    ))
}

/// A filter matching every subject of one user: `im.user.<userID>.>`.
pub fn user_filter(user_id: &str) -> Result<String, TokenError> {
    Ok(format!("{USER_PREFIX}.{}.>", escape(user_id)?))
}

/// Whether `subject` matches the NATS `filter`: `*` stands for one token, a final `>` for one
/// or more.
pub fn matches(filter: &str, subject: &str) -> bool {
    let mut subject_tokens = subject.split('.');
    for filter_token in filter.split('.') {
        match (filter_token, subject_tokens.next()) {
            (">", Some(_)) => return true,
            ("*", Some(_)) => {}
            (token, Some(subject_token)) if token == subject_token => {}
            _ => return false,
        }
    }
    subject_tokens.next().is_none()
}

/// The core NATS subjects of delivery. They are not in any stream: delivery is best effort
/// and fast, and completeness comes from seq sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LiveKind {
    /// `im.deliver.<userID>`: messages pushed to a user's connections (2001).
    Deliver,
    /// `im.session.<userID>`: session control for a user's connections: a new connection
    /// (for the multi-login policy) and force logouts.
    Session,
    /// `im.presence.<userID>`: a user's online platforms changed (for 2005 subscriptions).
    Presence,
}

impl LiveKind {
    const fn prefix(self) -> &'static str {
        match self {
            Self::Deliver => "im.deliver",
            Self::Session => "im.session",
            Self::Presence => "im.presence",
        }
    }
}

/// `im.deliver.<userID>`, `im.session.<userID>` or `im.presence.<userID>`, for core NATS
/// publish and subscribe.
pub fn live(kind: LiveKind, user_id: &str) -> Result<String, TokenError> {
    Ok(format!("{}.{}", kind.prefix(), escape(user_id)?))
}

/// `im.deliver.*`, `im.session.*` or `im.presence.*`: every user's subject of one kind, for a
/// subscription that serves them all.
pub fn every_live(kind: LiveKind) -> String {
    format!("{}.*", kind.prefix())
}

/// The user a live subject of `kind` is for, unescaped; `None` for any other subject.
pub fn live_user(kind: LiveKind, subject: &str) -> Option<String> {
    id_after(kind.prefix(), subject)
}

/// The ID in `subject` when it is `prefix` and one escaped token, unescaped.
fn id_after(prefix: &str, subject: &str) -> Option<String> {
    let token = subject.strip_prefix(prefix)?.strip_prefix('.')?;
    if token.contains('.') {
        return None;
    }
    unescape(token).ok()
}

/// `im.fanout.<conversationID>`: one message of that conversation pushed to many users at
/// once (2001), with the recipients in the payload. Every gateway hears it through one
/// subscription to [`every_fanout`] and writes it to the recipients it holds, so a
/// 200-member group's message is one NATS message per gateway, not one per member.
pub fn fanout(conversation_id: &str) -> Result<String, TokenError> {
    Ok(format!("{FANOUT_PREFIX}.{}", escape(conversation_id)?))
}

/// `im.fanout.*`: every conversation's fan-out pushes.
pub fn every_fanout() -> String {
    format!("{FANOUT_PREFIX}.*")
}

/// The conversation a fan-out subject is for, unescaped; `None` for any other subject.
pub fn fanout_conversation(subject: &str) -> Option<String> {
    id_after(FANOUT_PREFIX, subject)
}

const FANOUT_PREFIX: &str = "im.fanout";

/// `im.applied.<consumer>`: how far a projection's durable consumer has applied its stream
/// (the stream sequence, as decimal text), published after each committed batch so that a
/// service waiting on the read model (the push) learns it without polling. Core NATS, in no
/// stream, best effort: the projection registry in Postgres is the record.
pub fn projection_applied(consumer: &str) -> String {
    format!("im.applied.{consumer}")
}

/// A stored subject's tokens after `im`: family, escaped ID and kind.
fn stored_tokens(subject: &str) -> Option<(&str, &str, &str)> {
    let mut tokens = subject.split('.');
    let (Some("im"), Some(family), Some(id), Some(kind), None) = (
        tokens.next(),
        tokens.next(),
        tokens.next(),
        tokens.next(),
        tokens.next(),
    ) else {
        return None;
    };
    Some((family, id, kind))
}

/// A stored subject's ID token as it stands, escaped: one per conversation or user, and
/// cheaper than [`ParsedSubject::parse`] where the token itself serves (to tell events of
/// different conversations apart). `None` for anything but a stored subject.
pub fn id_token(subject: &str) -> Option<&str> {
    stored_tokens(subject).map(|(_, id, _)| id)
}

/// What a stored subject says, with its ID unescaped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParsedSubject {
    /// `im.conv.<conversationID>.<kind>`.
    Conversation {
        /// The conversation ID, unescaped.
        conversation_id: String,
        /// The kind token.
        kind: String,
    },
    /// `im.user.<userID>.<kind>`.
    User {
        /// The user ID, unescaped.
        user_id: String,
        /// The kind token.
        kind: String,
    },
}

impl ParsedSubject {
    /// Reads a subject from one of jetim's streams; `None` for anything else.
    pub fn parse(subject: &str) -> Option<Self> {
        let (family, id, kind) = stored_tokens(subject)?;
        let id = if id == APP_WIDE_TOKEN {
            String::new()
        } else {
            unescape(id).ok()?
        };
        match family {
            "conv" => Some(Self::Conversation {
                conversation_id: id,
                kind: kind.to_owned(),
            }),
            "user" => Some(Self::User {
                user_id: id,
                kind: kind.to_owned(),
            }),
            _ => None,
        }
    }

    /// The timeline kind, if this is a known conversation kind.
    pub fn conversation_kind(&self) -> Option<ConversationKind> {
        match self {
            Self::Conversation { kind, .. } => ConversationKind::from_token(kind),
            Self::User { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_match_filters_as_nats_matches_them() {
        assert!(matches("im.conv.*.msg", "im.conv.si_a_b.msg"));
        assert!(!matches("im.conv.*.msg", "im.conv.si_a_b.group"));
        assert!(!matches("im.conv.*.msg", "im.conv.si_a_b.msg.x"));
        assert!(!matches("im.conv.*.msg", "im.conv.msg"));
        assert!(matches("im.user.>", "im.user.alice.account"));
        assert!(!matches("im.user.>", "im.user"));
        assert!(matches("im.user.alice.account", "im.user.alice.account"));
        assert!(!matches("im.user.alice.account", "im.user.bob.account"));
    }

    #[test]
    fn timeline_subjects_escape_the_conversation_id() {
        let subject = Subject::timeline("si_a.b_c").unwrap();
        assert_eq!(subject.as_str(), "im.conv.si_a=2Eb_c.msg");
        assert!(subject.is_timeline());
    }

    #[test]
    fn user_subjects_live_in_the_user_stream() {
        let subject = Subject::user("a@b", UserKind::Account).unwrap();
        assert_eq!(subject.as_str(), "im.user.a=40b.account");
        assert_eq!(subject.stream(), USER_STREAM);
        assert!(!subject.is_timeline());
        assert_eq!(
            Subject::timeline("x").unwrap().stream(),
            CONVERSATION_STREAM
        );
    }

    #[test]
    fn the_app_wide_config_subject_is_no_user_s() {
        assert_eq!(Subject::app_config().as_str(), "im.user.=.config");
        assert_eq!(
            ParsedSubject::parse("im.user.=.config"),
            Some(ParsedSubject::User {
                user_id: String::new(),
                kind: "config".into()
            })
        );
    }

    #[test]
    fn kind_filters_span_every_id() {
        assert_eq!(
            every_conversation(ConversationKind::Timeline),
            "im.conv.*.msg"
        );
        assert_eq!(every_user(UserKind::Account), "im.user.*.account");
    }

    #[test]
    fn live_subjects_escape_the_user() {
        assert_eq!(live(LiveKind::Deliver, "u1").unwrap(), "im.deliver.u1");
        assert_eq!(live(LiveKind::Session, "a.b").unwrap(), "im.session.a=2Eb");
        assert_eq!(live(LiveKind::Presence, ">").unwrap(), "im.presence.=3E");
        assert!(live(LiveKind::Deliver, "").is_err());
        assert_eq!(every_live(LiveKind::Session), "im.session.*");
        for user_id in ["u1", "a.b", ">", "x y"] {
            let subject = live(LiveKind::Session, user_id).unwrap();
            assert_eq!(
                live_user(LiveKind::Session, &subject).as_deref(),
                Some(user_id)
            );
            assert!(matches(&every_live(LiveKind::Session), &subject));
            assert_eq!(live_user(LiveKind::Deliver, &subject), None);
        }
        for stranger in [
            "im.session",
            "im.session.",
            "im.session.a.b",
            "im.sessions.a",
            "im.session.=Z1",
        ] {
            assert_eq!(live_user(LiveKind::Session, stranger), None, "{stranger}");
        }
    }

    #[test]
    fn fanout_subjects_escape_the_conversation_and_match_the_shared_subscription() {
        assert_eq!(fanout("sg_g1").unwrap(), "im.fanout.sg_g1");
        assert_eq!(fanout("sg_a.b").unwrap(), "im.fanout.sg_a=2Eb");
        assert!(fanout("").is_err());
        assert_eq!(every_fanout(), "im.fanout.*");
        for conversation_id in ["sg_g1", "si_a_b", "sg_*>. x"] {
            let subject = fanout(conversation_id).unwrap();
            assert!(matches(&every_fanout(), &subject), "{subject}");
            assert_eq!(
                fanout_conversation(&subject).as_deref(),
                Some(conversation_id)
            );
            assert_eq!(live_user(LiveKind::Deliver, &subject), None);
        }
        for stranger in [
            "im.fanout",
            "im.fanout.a.b",
            "im.deliver.u1",
            "im.fanoutx.a",
        ] {
            assert_eq!(fanout_conversation(stranger), None, "{stranger}");
        }
    }

    #[test]
    fn an_id_cannot_widen_a_filter() {
        assert_eq!(conversation_filter(">").unwrap(), "im.conv.=3E.>");
        assert_eq!(user_filter("*").unwrap(), "im.user.=2A.>");
    }

    #[test]
    fn parsing_gives_back_the_unescaped_id() {
        let subject = Subject::timeline("sg_group 1").unwrap();
        let parsed = ParsedSubject::parse(subject.as_str()).unwrap();
        assert_eq!(
            parsed,
            ParsedSubject::Conversation {
                conversation_id: "sg_group 1".into(),
                kind: "msg".into()
            }
        );
        assert_eq!(parsed.conversation_kind(), Some(ConversationKind::Timeline));
        assert_eq!(ParsedSubject::parse("im.conv.a.b.c"), None);
        assert_eq!(ParsedSubject::parse("other.conv.a.msg"), None);
        assert_eq!(id_token(subject.as_str()), Some("sg_group=201"));
        assert_eq!(id_token("im.conv.a.b.c"), None);
    }
}
