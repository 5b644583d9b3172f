//! The message command side, shared by the REST API and the WebSocket gateway.
//!
//! - [`conversation`]: session types and OpenIM's conversation-ID rules.
//! - [`options`]: message options, where a missing key means true.
//! - [`notification`]: server notifications between two users (friend and block changes).
//! - [`content`]: what each content type's JSON must hold.
//! - [`revoke`]: who may revoke what, how a revoked message reads, the 2101 notification.
//! - [`send`]: the send decision: a client's message becomes a `msg.sent` event or a refusal.
//! - [`delivery`]: who a message is pushed to, and the 2001 payload.
//!
//! - [`service`]: sending for real: the lookups, the decision, the append that fixes the seq.
//! - [`sync`]: seq sync, the reads clients make to catch up (max seqs, pulls, read seqs).
//!
//! The decision is pure: it takes what was looked up and returns the message to append or a
//! [`Rejection`], so it is tested without servers; [`service`] does the I/O around it.

pub mod content;
pub mod conversation;
pub mod delivery;
pub mod notification;
pub mod options;
pub mod revoke;
pub mod send;
pub mod service;
pub mod sync;

/// Why a command is refused: a domain answer the caller maps to an OpenIM error code, never an
/// infrastructure failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// 1001: the command is malformed.
    #[error("{0}")]
    Invalid(String),
    /// 1002: the caller may not do this.
    #[error("{0}")]
    NoPermission(String),
    /// 1101: a user the command names is not registered.
    #[error("{0}")]
    UnknownUser(String),
    /// 1201: the group does not exist.
    #[error("{0}")]
    UnknownGroup(String),
    /// 1203: the sender is not a member of the group.
    #[error("{0}")]
    NotInGroup(String),
    /// 1204: the group is dismissed.
    #[error("{0}")]
    GroupDismissed(String),
    /// 1402: the sender is muted in the group.
    #[error("{0}")]
    MutedInGroup(String),
    /// 1403: the group is muted, and the sender is neither its owner nor an admin.
    #[error("{0}")]
    GroupMuted(String),
    /// 1302: the receiver blocks the sender.
    #[error("{0}")]
    Blocked(String),
    /// 1303: friends only, and the receiver does not list the sender as a friend.
    #[error("{0}")]
    NotFriends(String),
    /// 1404: the message is already revoked.
    #[error("{0}")]
    AlreadyRevoked(String),
}

impl Rejection {
    /// The OpenIM code the refusal is answered with.
    pub const fn code(&self) -> jetim_common::errcode::Code {
        use jetim_common::errcode::Code;
        match self {
            Self::Invalid(_) => Code::Args,
            Self::NoPermission(_) => Code::NoPermission,
            Self::UnknownUser(_) => Code::UserIdNotFound,
            Self::UnknownGroup(_) => Code::GroupIdNotFound,
            Self::NotInGroup(_) => Code::NotInGroupYet,
            Self::GroupDismissed(_) => Code::DismissedAlready,
            Self::MutedInGroup(_) => Code::MutedInGroup,
            Self::GroupMuted(_) => Code::MutedGroup,
            Self::Blocked(_) => Code::BlockedByPeer,
            Self::NotFriends(_) => Code::NotPeersFriend,
            Self::AlreadyRevoked(_) => Code::MsgAlreadyRevoke,
        }
    }
}
