//! OpenIM's REST transport, implemented once for every route.
//!
//! - [`extract`]: `operationID`, `token` and the JSON body, checked in that order.
//! - [`json`]: Go's key matching (case-insensitive, `null` as absent) for request bodies.
//! - [`envelope`]: the `{"errCode","errMsg","errDlt","data"}` reply, always HTTP 200.
//! - [`error`]: the closed set of OpenIM error codes.
//! - [`cors`]: the CORS headers and the `OPTIONS` answer.

pub mod cors;
pub mod envelope;
pub mod error;
pub mod extract;
pub mod json;

pub use envelope::{Done, Reply, null_if_empty};
pub use error::{ApiError, Code};
pub use extract::{Authed, AuthedBytes, Caller, Public};
