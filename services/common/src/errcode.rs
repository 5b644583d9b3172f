//! OpenIM's error codes, one closed set shared by the REST API and the gateway, each mapped
//! once to its errCode and errMsg (`shared/reference/rest-api.md` §7).

use crate::auth::TokenError;

/// The OpenIM error codes jetim answers with (`shared/reference/rest-api.md` §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// 500: an unexpected failure (NATS or Postgres down); detail says what.
    ServerInternal,
    /// 1001: bad arguments, a missing header, a body that does not decode.
    Args,
    /// 1002: the caller may not do this.
    NoPermission,
    /// 1003: duplicate record.
    DuplicateKey,
    /// 1004: record missing.
    RecordNotFound,
    /// 1101: user not registered.
    UserIdNotFound,
    /// 1102: user already registered.
    RegisteredAlready,
    /// 1201: group missing.
    GroupIdNotFound,
    /// 1202: the group ID is taken.
    GroupIdExisted,
    /// 1203: not a member of the group.
    NotInGroupYet,
    /// 1204: the group is dismissed.
    DismissedAlready,
    /// 1205: the group type is not supported (upstream's errMsg is empty).
    GroupTypeNotSupport,
    /// 1206: the application is already handled.
    GroupRequestHandled,
    /// 1301: a friend request to oneself.
    CanNotAddYourself,
    /// 1302: the receiver blocks the sender.
    BlockedByPeer,
    /// 1303: friends only (`friendVerify`), and the two are not friends.
    NotPeersFriend,
    /// 1304: already friends.
    RelationshipAlready,
    /// 1402: the sender is muted in the group.
    MutedInGroup,
    /// 1403: the group is muted (its owner and admins may still send).
    MutedGroup,
    /// 1404: the message is already revoked.
    MsgAlreadyRevoke,
    /// 1501: token expired.
    TokenExpired,
    /// 1502: token does not belong to this user or platform.
    TokenInvalid,
    /// 1503: not a token.
    TokenMalformed,
    /// 1504: token not valid yet.
    TokenNotValidYet,
    /// 1505: any other token failure (bad signature, unknown state).
    TokenUnknown,
    /// 1506: token kicked (multi-login or force logout).
    TokenKicked,
    /// 1507: token not known to the server.
    TokenNotExist,
    /// 1601: the gateway holds as many connections as it may.
    ConnOverMaxNumLimit,
    /// 1602: bad gateway handshake parameters.
    ConnArgs,
}

impl Code {
    /// The numeric errCode.
    pub const fn number(self) -> i32 {
        match self {
            Self::ServerInternal => 500,
            Self::Args => 1001,
            Self::NoPermission => 1002,
            Self::DuplicateKey => 1003,
            Self::RecordNotFound => 1004,
            Self::UserIdNotFound => 1101,
            Self::RegisteredAlready => 1102,
            Self::GroupIdNotFound => 1201,
            Self::GroupIdExisted => 1202,
            Self::NotInGroupYet => 1203,
            Self::DismissedAlready => 1204,
            Self::GroupTypeNotSupport => 1205,
            Self::GroupRequestHandled => 1206,
            Self::CanNotAddYourself => 1301,
            Self::BlockedByPeer => 1302,
            Self::NotPeersFriend => 1303,
            Self::RelationshipAlready => 1304,
            Self::MutedInGroup => 1402,
            Self::MutedGroup => 1403,
            Self::MsgAlreadyRevoke => 1404,
            Self::TokenExpired => 1501,
            Self::TokenInvalid => 1502,
            Self::TokenMalformed => 1503,
            Self::TokenNotValidYet => 1504,
            Self::TokenUnknown => 1505,
            Self::TokenKicked => 1506,
            Self::TokenNotExist => 1507,
            Self::ConnOverMaxNumLimit => 1601,
            Self::ConnArgs => 1602,
        }
    }

    /// The errMsg OpenIM shows for the code.
    pub const fn name(self) -> &'static str {
        match self {
            Self::ServerInternal => "ServerInternalError",
            Self::Args => "ArgsError",
            Self::NoPermission => "NoPermissionError",
            Self::DuplicateKey => "DuplicateKeyError",
            Self::RecordNotFound => "RecordNotFoundError",
            Self::UserIdNotFound => "UserIDNotFoundError",
            Self::RegisteredAlready => "RegisteredAlreadyError",
            Self::GroupIdNotFound => "GroupIDNotFoundError",
            Self::GroupIdExisted => "GroupIDExisted",
            Self::NotInGroupYet => "NotInGroupYetError",
            Self::DismissedAlready => "DismissedAlreadyError",
            Self::GroupTypeNotSupport => "",
            Self::GroupRequestHandled => "GroupRequestHandled",
            Self::CanNotAddYourself => "CanNotAddYourselfError",
            Self::BlockedByPeer => "BlockedByPeer",
            Self::NotPeersFriend => "NotPeersFriend",
            Self::RelationshipAlready => "RelationshipAlreadyError",
            Self::MutedInGroup => "MutedInGroup",
            Self::MutedGroup => "MutedGroup",
            Self::MsgAlreadyRevoke => "MsgAlreadyRevoke",
            Self::TokenExpired => "TokenExpiredError",
            Self::TokenInvalid => "TokenInvalidError",
            Self::TokenMalformed => "TokenMalformedError",
            Self::TokenNotValidYet => "TokenNotValidYetError",
            Self::TokenUnknown => "TokenUnknownError",
            Self::TokenKicked => "TokenKickedError",
            Self::TokenNotExist => "TokenNotExistError",
            Self::ConnOverMaxNumLimit => "ConnOverMaxNumLimit",
            Self::ConnArgs => "args err, need token, sendID, platformID",
        }
    }
}

impl Code {
    /// The code of a token failure; `None` when the token store itself failed (an internal
    /// error, not the client's).
    pub const fn of_token_error(error: &TokenError) -> Option<Self> {
        match error {
            TokenError::Expired => Some(Self::TokenExpired),
            TokenError::Malformed => Some(Self::TokenMalformed),
            TokenError::NotValidYet => Some(Self::TokenNotValidYet),
            TokenError::Unknown(_) => Some(Self::TokenUnknown),
            TokenError::Kicked => Some(Self::TokenKicked),
            TokenError::NotExist => Some(Self::TokenNotExist),
            TokenError::Store(_) => None,
        }
    }
}
