//! The WebSocket under a connection: the HTTP/1.1 upgrade (RFC 6455 §4.2), then tungstenite's
//! stream on the upgraded connection.
//!
//! axum's `WebSocketUpgrade` does the same upgrade, but the socket it hands over sends whole
//! messages only, and the gateway must be able to send a long one in fragments. tungstenite
//! copies each frame it sends into the connection's write buffer, a `Vec` that keeps the
//! largest size it ever had until the connection closes. One pull reply of 1,000 short
//! messages, about 200 KB, left each connection that got it holding that much more for as
//! long as it stayed: 19 MB of the gateway's peak heap with 100 connections (heaptrack,
//! docs/performance.md). A message longer than [`FRAGMENT_BYTES`] goes out in fragments of
//! that size, each flushed before the next ([`crate::connection`]), so the buffer holds at
//! most one of them.
//!
//! The handshake itself is tungstenite's (`derive_accept_key`); this module checks the
//! request's headers as the RFC asks and answers 101.

use std::future::Future;

use axum::body::Body;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Version, header};
use axum::response::Response;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};

pub use tokio_tungstenite::tungstenite::Error;
pub use tokio_tungstenite::tungstenite::Message;
pub use tokio_tungstenite::tungstenite::protocol::CloseFrame;

/// A client's WebSocket, on the HTTP connection it upgraded.
pub type WebSocket = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

/// A message longer than this goes out in fragments of this size, each flushed before the
/// next: what a connection's write buffer keeps of its longest message.
pub const FRAGMENT_BYTES: usize = 8 * 1024;

/// The close codes the gateway sends (RFC 6455 §7.4.1).
pub mod close_code {
    /// The connection did what it was for.
    pub const NORMAL: u16 = 1000;
    /// The server is going away.
    pub const AWAY: u16 = 1001;
    /// The client broke the protocol.
    pub const PROTOCOL: u16 = 1002;
    /// A message's data is not what its type says.
    pub const INVALID: u16 = 1007;
    /// The client broke a rule of the server's.
    pub const POLICY: u16 = 1008;
    /// A message too long to take.
    pub const SIZE: u16 = 1009;
    /// The server failed.
    pub const ERROR: u16 = 1011;
}

/// The limits a connection's socket keeps.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// The longest message, and frame, a client may send.
    pub max_frame_bytes: usize,
    /// The read buffer each connection holds.
    pub read_buffer_bytes: usize,
}

/// An HTTP/1.1 request to become a WebSocket, checked and ready to answer.
pub struct Upgrade {
    /// `Sec-WebSocket-Accept`, from the client's key.
    accept: HeaderValue,
    on_upgrade: OnUpgrade,
}

impl Upgrade {
    /// The upgrade `parts` asks for, or why it is not one. Takes the upgrade's handle from
    /// `parts`.
    pub fn from_parts(parts: &mut Parts) -> Result<Self, &'static str> {
        if parts.version != Version::HTTP_11 {
            return Err("a WebSocket upgrade needs HTTP/1.1");
        }
        if parts.method != Method::GET {
            return Err("a WebSocket upgrade is a GET");
        }
        if !has_token(&parts.headers, header::CONNECTION, "upgrade") {
            return Err("a WebSocket upgrade sends `Connection: upgrade`");
        }
        if !has_token(&parts.headers, header::UPGRADE, "websocket") {
            return Err("a WebSocket upgrade sends `Upgrade: websocket`");
        }
        if parts
            .headers
            .get(header::SEC_WEBSOCKET_VERSION)
            .is_none_or(|version| version.as_bytes() != b"13")
        {
            return Err("a WebSocket upgrade sends `Sec-WebSocket-Version: 13`");
        }
        let key = parts
            .headers
            .get(header::SEC_WEBSOCKET_KEY)
            .ok_or("a WebSocket upgrade sends a `Sec-WebSocket-Key`")?;
        // Base64, so always a valid header value.
        let accept = HeaderValue::from_str(&derive_accept_key(key.as_bytes()))
            .map_err(|_| "the accept key is not a header value")?;
        let on_upgrade = parts
            .extensions
            .remove::<OnUpgrade>()
            .ok_or("this HTTP connection cannot be upgraded")?;
        Ok(Self { accept, on_upgrade })
    }

    /// Answers 101 and runs `serve` on the socket once the client has it; a connection that
    /// goes before that is dropped.
    pub fn on_upgrade<F, Fut>(self, limits: Limits, serve: F) -> Response
    where
        F: FnOnce(WebSocket) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let config = WebSocketConfig::default()
            .read_buffer_size(limits.read_buffer_bytes)
            .max_message_size(Some(limits.max_frame_bytes))
            .max_frame_size(Some(limits.max_frame_bytes));
        let on_upgrade = self.on_upgrade;
        tokio::spawn(async move {
            let Ok(upgraded) = on_upgrade.await else {
                return;
            };
            let socket = WebSocketStream::from_raw_socket(
                TokioIo::new(upgraded),
                Role::Server,
                Some(config),
            )
            .await;
            serve(socket).await;
        });
        let mut response = Response::new(Body::empty());
        *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        let headers = response.headers_mut();
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        headers.insert(header::SEC_WEBSOCKET_ACCEPT, self.accept);
        response
    }
}

/// Whether one of `name`'s comma-separated values is `token`, in any case.
fn has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers.get_all(name).iter().any(|value| {
        value.to_str().is_ok_and(|value| {
            value
                .split(',')
                .any(|part| part.trim().eq_ignore_ascii_case(token))
        })
    })
}

#[cfg(test)]
mod tests {
    use axum::http::{Request, Version, header};

    use super::Upgrade;

    fn parts(edit: impl FnOnce(&mut axum::http::request::Builder)) -> axum::http::request::Parts {
        let mut builder = Request::get("/?sendID=u1")
            .version(Version::HTTP_11)
            .header(header::CONNECTION, "keep-alive, Upgrade")
            .header(header::UPGRADE, "WebSocket")
            .header(header::SEC_WEBSOCKET_VERSION, "13")
            .header(header::SEC_WEBSOCKET_KEY, "dGhlIHNhbXBsZSBub25jZQ==");
        edit(&mut builder);
        builder.body(()).unwrap().into_parts().0
    }

    #[test]
    fn a_request_that_is_not_an_upgrade_says_what_it_lacks() {
        let mut plain = Request::get("/").body(()).unwrap().into_parts().0;
        let error = Upgrade::from_parts(&mut plain).err().unwrap();
        assert!(error.contains("Connection: upgrade"), "{error}");

        let mut old = parts(|builder| {
            if let Some(headers) = builder.headers_mut() {
                headers.insert(header::SEC_WEBSOCKET_VERSION, "8".parse().unwrap());
            }
        });
        let error = Upgrade::from_parts(&mut old).err().unwrap();
        assert!(error.contains("Version: 13"), "{error}");

        let mut keyless = parts(|builder| {
            if let Some(headers) = builder.headers_mut() {
                headers.remove(header::SEC_WEBSOCKET_KEY);
            }
        });
        let error = Upgrade::from_parts(&mut keyless).err().unwrap();
        assert!(error.contains("Sec-WebSocket-Key"), "{error}");
    }

    #[test]
    fn a_well_formed_upgrade_outside_a_server_cannot_be_upgraded() {
        // Headers in any case and among other tokens pass; only hyper's handle is missing.
        let mut request = parts(|_| {});
        let error = Upgrade::from_parts(&mut request).err().unwrap();
        assert_eq!(error, "this HTTP connection cannot be upgraded");
    }
}
