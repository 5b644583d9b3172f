//! OpenIM's error codes: one closed set, each mapped once to its errCode and errMsg.
//!
//! Every failure a client sees is an [`ApiError`]: a [`Code`] and a free-form detail
//! (`errDlt`). HTTP status is always 200 for handled requests, as OpenIM does; the code is in
//! the envelope.

pub use jetim_common::errcode::Code;

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
