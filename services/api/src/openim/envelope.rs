//! The response envelope: always HTTP 200 with `{"errCode","errMsg","errDlt","data"}`, keys in
//! that order, `data` left out on errors and for replies without fields.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::error::ApiError;

#[derive(Serialize)]
struct Envelope<'a, T: Serialize> {
    #[serde(rename = "errCode")]
    code: i32,
    #[serde(rename = "errMsg")]
    message: &'a str,
    #[serde(rename = "errDlt")]
    detail: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<T>,
}

fn json_response<T: Serialize>(envelope: &Envelope<'_, T>) -> Response {
    match serde_json::to_vec(envelope) {
        Ok(body) => {
            let mut response = (StatusCode::OK, body).into_response();
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json; charset=utf-8"),
            );
            response
        }
        Err(error) => {
            tracing::error!(%error, "reply does not serialise");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// A successful reply with `data`.
pub struct Reply<T>(pub T);

/// A successful reply without `data` (OpenIM's empty responses).
pub struct Done;

impl<T: Serialize> IntoResponse for Reply<T> {
    fn into_response(self) -> Response {
        json_response(&Envelope {
            code: 0,
            message: "",
            detail: "",
            data: Some(self.0),
        })
    }
}

impl IntoResponse for Done {
    fn into_response(self) -> Response {
        json_response::<()>(&Envelope {
            code: 0,
            message: "",
            detail: "",
            data: None,
        })
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        json_response::<()>(&Envelope {
            code: self.code.number(),
            message: &self.message,
            detail: &self.detail,
            data: None,
        })
    }
}

/// Serialises an empty list as `null`, as Go does for a nil slice.
pub fn null_if_empty<T: Serialize, S: serde::Serializer>(
    items: &[T],
    serializer: S,
) -> Result<S::Ok, S::Error> {
    if items.is_empty() {
        serializer.serialize_none()
    } else {
        serializer.collect_seq(items)
    }
}
