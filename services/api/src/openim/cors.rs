//! CORS as OpenIM answers it: every response allows any origin, method and header, and an
//! `OPTIONS` request on any path is answered at once with 200 and the JSON string
//! `"Options Request!"`. Browser and wasm clients need this; the REST port is cross-origin.
//! Written out here because the exact headers and preflight body are the contract, which a
//! generic CORS layer does not reproduce.

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

const EXPOSED_HEADERS: &str = "Content-Length, Access-Control-Allow-Origin, Access-Control-Allow-Headers,Cache-Control,Content-Language,Content-Type,Expires,Last-Modified,Pragma,FooBar";

fn add_cors_headers(headers: &mut HeaderMap) {
    let star = HeaderValue::from_static("*");
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, star.clone());
    headers.insert(header::ACCESS_CONTROL_ALLOW_METHODS, star.clone());
    headers.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, star);
    headers.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static(EXPOSED_HEADERS),
    );
    headers.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("172800"),
    );
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
        HeaderValue::from_static("false"),
    );
}

/// The middleware.
pub async fn cors(request: Request, next: Next) -> Response {
    let mut response = if request.method() == Method::OPTIONS {
        let mut preflight = (StatusCode::OK, "\"Options Request!\"").into_response();
        preflight.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        );
        preflight
    } else {
        next.run(request).await
    };
    add_cors_headers(response.headers_mut());
    response
}
