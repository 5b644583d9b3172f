//! OpenIM's error codes: one closed set, each mapped once to its errCode and errMsg.
//!
//! Every failure a client sees is an [`ApiError`]: a [`Code`] and a free-form detail
//! (`errDlt`). HTTP status is always 200 for handled requests, as OpenIM does; the code is in
//! the envelope.

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
            Self::MsgAlreadyRevoke => 1404,
            Self::TokenExpired => 1501,
            Self::TokenInvalid => 1502,
            Self::TokenMalformed => 1503,
            Self::TokenNotValidYet => 1504,
            Self::TokenUnknown => 1505,
            Self::TokenKicked => 1506,
            Self::TokenNotExist => 1507,
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
            Self::MsgAlreadyRevoke => "MsgAlreadyRevoke",
            Self::TokenExpired => "TokenExpiredError",
            Self::TokenInvalid => "TokenInvalidError",
            Self::TokenMalformed => "TokenMalformedError",
            Self::TokenNotValidYet => "TokenNotValidYetError",
            Self::TokenUnknown => "TokenUnknownError",
            Self::TokenKicked => "TokenKickedError",
            Self::TokenNotExist => "TokenNotExistError",
        }
    }
}

/// A failure as the client sees it: errCode, errMsg, errDlt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The code.
    pub code: Code,
    /// errMsg; the code's name except where OpenIM shows other text (JSON decode errors).
    pub message: String,
    /// errDlt: what exactly was wrong.
    pub detail: String,
}

impl ApiError {
    /// An error with the code's own name as errMsg.
    pub fn new(code: Code, detail: impl Into<String>) -> Self {
        Self {
            code,
            message: code.name().to_owned(),
            detail: detail.into(),
        }
    }

    /// 1001 with a reason.
    pub fn args(detail: impl Into<String>) -> Self {
        Self::new(Code::Args, detail)
    }

    /// 1002 with a reason.
    pub fn no_permission(detail: impl Into<String>) -> Self {
        Self::new(Code::NoPermission, detail)
    }

    /// 500 for an infrastructure failure. The detail is logged here, once, and sent to the
    /// client as a short description.
    pub fn internal(context: &str, error: &dyn std::fmt::Display) -> Self {
        tracing::error!(%error, "{context}");
        Self::new(Code::ServerInternal, format!("{context}: {error}"))
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            formatter,
            "{} {}: {}",
            self.code.number(),
            self.message,
            self.detail
        )
    }
}

impl std::error::Error for ApiError {}
