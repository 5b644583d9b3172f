//! The OpenIM WebSocket gateway (port 10001 by default), `shared/reference/gateway.md`.
//!
//! - [`handshake`]: the query every SDK sends, checked in OpenIM's order.
//! - [`envelope`]: the request and reply envelopes (JSON, with optional gzip).
//! - [`requests`]: the requests served over a connection (1001–1007), by the messaging code
//!   the REST routes use too.
//!
//! A connection is accepted on any path. Its token must be valid and bound to the user and
//! platform the query names. Then one task reads frames and answers each request in order;
//! another writes from a bounded queue, and a client that lets the queue fill is closed with
//! a reason rather than having frames dropped. A text ping gets a text pong at once; a
//! connection silent for longer than the read timeout is closed.
//!
//! Not yet: the gob envelope of the Go SDK (refused at the handshake with 1602), pushes
//! (2001), kicks (2002), presence and its subscriptions (2005), logout and background status
//! (2003, 2004).

pub mod envelope;
pub mod handshake;
pub mod requests;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use futures::{SinkExt as _, StreamExt as _};
use jetim_common::auth::TokenService;
use jetim_common::config::GatewayConfig;
use jetim_common::errcode::Code;
use jetim_common::shutdown::CancellationToken;
use jetim_streams::EventLog;
use tokio::sync::{mpsc, oneshot};

use crate::handshake::{ConnectArgs, Envelope, Refusal};

/// The handles every connection shares; cheap to clone.
#[derive(Clone)]
pub struct GatewayState {
    /// Checks tokens.
    pub tokens: TokenService,
    /// The read models.
    pub db: deadpool_postgres::Pool,
    /// The event log's writer.
    pub log: Arc<EventLog>,
    /// Frame and queue limits.
    pub config: GatewayConfig,
}

/// A bound, ready-to-run gateway.
pub struct App {
    listener: tokio::net::TcpListener,
    router: Router,
}

/// Binds `state.config.listen`.
pub async fn build(state: GatewayState) -> anyhow::Result<App> {
    let listen = state.config.listen;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|error| {
            anyhow::anyhow!("cannot listen on {listen} (setting gateway.listen): {error}")
        })?;
    let router = Router::new().fallback(connect).with_state(state);
    Ok(App { listener, router })
}

impl App {
    /// The address the gateway listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    /// Serves until `shutdown` is cancelled.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> std::io::Result<()> {
        axum::serve(self.listener, self.router)
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await
    }
}

/// The in-band success frame.
const CONNECTED: &str = r#"{"errCode":0,"errMsg":"","errDlt":""}"#;

async fn check(state: &GatewayState, args: &ConnectArgs) -> Result<(), Refusal> {
    if args.envelope == Envelope::Gob {
        return Err(Refusal {
            code: Code::ConnArgs,
            detail: "the gob envelope (sdkType go, the Go SDK) is not served yet; use sdkType=js"
                .to_owned(),
        });
    }
    let claims = state.tokens.verify(&args.token).await.map_err(|error| {
        let code = Code::of_token_error(&error).unwrap_or(Code::ServerInternal);
        Refusal {
            code,
            detail: error.to_string(),
        }
    })?;
    if claims.user_id != args.user_id || claims.platform_id != args.platform.id() {
        return Err(Refusal {
            code: Code::TokenInvalid,
            detail: format!(
                "the token is for {} on platform {}, not {} on {}",
                claims.user_id,
                claims.platform_id,
                args.user_id,
                args.platform.id()
            ),
        });
    }
    Ok(())
}

async fn connect(
    State(state): State<GatewayState>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let in_band = handshake::wants_in_band_result(&query);
    let compression = headers
        .get("compression")
        .and_then(|value| value.to_str().ok());
    let checked = match handshake::parse(&query, compression) {
        Ok(args) => check(&state, &args).await.map(|()| args),
        Err(refusal) => Err(refusal),
    };
    let Ok(upgrade) = upgrade else {
        let refusal = checked.err().unwrap_or(Refusal {
            code: Code::ConnArgs,
            detail: "not a WebSocket upgrade".to_owned(),
        });
        return refused(&refusal);
    };
    let upgrade = upgrade
        .max_message_size(state.config.max_frame_bytes)
        .max_frame_size(state.config.max_frame_bytes);
    match checked {
        Ok(args) => upgrade.on_upgrade(move |socket| serve_connection(socket, state, args)),
        Err(refusal) if in_band => upgrade.on_upgrade(move |mut socket| async move {
            let _ = socket.send(Message::Text(refusal.to_json().into())).await;
            let _ = socket.send(Message::Close(None)).await;
        }),
        Err(refusal) => refused(&refusal),
    }
}

/// A refusal the native SDK reads from the HTTP body of a refused upgrade.
fn refused(refusal: &Refusal) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
        refusal.to_json(),
    )
        .into_response()
}

/// What the reader asks of the writer.
struct Outbound {
    frames: mpsc::Sender<Message>,
    close: Option<oneshot::Sender<(u16, String)>>,
}

impl Outbound {
    /// Queues a frame; `false` when the client is too far behind (and is being closed).
    fn send(&mut self, frame: Message) -> bool {
        match self.frames.try_send(frame) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.close(close_code::POLICY, "the client does not read fast enough");
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    fn close(&mut self, code: u16, reason: &str) {
        if let Some(close) = self.close.take() {
            let _ = close.send((code, reason.to_owned()));
        }
    }
}

/// The text heartbeat: `{"type":"ping","body":…}` gets `{"type":"pong","body":…}`; a pong
/// is ignored; anything else is a protocol error.
fn answer_text(text: &str) -> Result<Option<String>, String> {
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|_| "a text frame that is not JSON".to_owned())?;
    match value.get("type").and_then(serde_json::Value::as_str) {
        Some("ping") => {
            let body = value
                .get("body")
                .cloned()
                .unwrap_or(serde_json::Value::Null);
            Ok(Some(
                serde_json::json!({"type": "pong", "body": body}).to_string(),
            ))
        }
        Some("pong") => Ok(None),
        _ => Err("a text frame that is neither ping nor pong".to_owned()),
    }
}

async fn serve_connection(socket: WebSocket, state: GatewayState, args: ConnectArgs) {
    let (mut sink, mut stream) = socket.split();
    if args.in_band_result && sink.send(Message::Text(CONNECTED.into())).await.is_err() {
        return;
    }
    let (frames, mut queued) = mpsc::channel::<Message>(state.config.write_queue);
    let (close, mut closing) = oneshot::channel::<(u16, String)>();
    let writer = tokio::spawn(async move {
        loop {
            tokio::select! {
                biased;
                reason = &mut closing => {
                    if let Ok((code, reason)) = reason {
                        let _ = sink
                            .send(Message::Close(Some(CloseFrame { code, reason: reason.into() })))
                            .await;
                    }
                    break;
                }
                frame = queued.recv() => match frame {
                    Some(frame) => {
                        if sink.send(frame).await.is_err() {
                            break;
                        }
                    }
                    None => {
                        let _ = sink.close().await;
                        break;
                    }
                },
            }
        }
    });
    let mut outbound = Outbound {
        frames,
        close: Some(close),
    };
    let read_timeout = Duration::from_secs(state.config.read_timeout_secs);
    tracing::debug!(user = %args.user_id, platform = args.platform.id(), "connected");
    loop {
        let frame = match tokio::time::timeout(read_timeout, stream.next()).await {
            Err(_) => {
                outbound.close(close_code::POLICY, "no frame within the read timeout");
                break;
            }
            Ok(None | Some(Err(_))) => break,
            Ok(Some(Ok(frame))) => frame,
        };
        let keep_going = match frame {
            Message::Text(text) => match answer_text(text.as_str()) {
                Ok(Some(pong)) => outbound.send(Message::Text(pong.into())),
                Ok(None) => true,
                Err(reason) => {
                    outbound.close(close_code::PROTOCOL, &reason);
                    false
                }
            },
            Message::Binary(bytes) => {
                match envelope::decode_json(&bytes, args.gzip, state.config.max_frame_bytes) {
                    Err(bad) => {
                        outbound.close(close_code::INVALID, &bad.0);
                        false
                    }
                    Ok(request) if request.send_id != args.user_id => {
                        outbound.close(
                            close_code::POLICY,
                            &format!("sendID {:?} is not this connection's user", request.send_id),
                        );
                        false
                    }
                    Ok(request) => {
                        let reply = requests::serve(&state, &args.user_id, &request).await;
                        outbound.send(Message::Binary(
                            envelope::encode_json(&reply, args.gzip).into(),
                        ))
                    }
                }
            }
            Message::Ping(payload) => outbound.send(Message::Pong(payload)),
            Message::Pong(_) => true,
            Message::Close(_) => false,
        };
        if !keep_going {
            break;
        }
    }
    drop(outbound);
    let _ = writer.await;
    tracing::debug!(user = %args.user_id, "disconnected");
}

#[cfg(test)]
mod tests {
    use super::answer_text;

    #[test]
    fn text_pings_get_pongs_with_the_same_body() {
        assert_eq!(
            answer_text(r#"{"type":"ping"}"#).unwrap().unwrap(),
            r#"{"body":null,"type":"pong"}"#
        );
        assert_eq!(
            answer_text(r#"{"type":"ping","body":"op-1"}"#)
                .unwrap()
                .unwrap(),
            r#"{"body":"op-1","type":"pong"}"#
        );
        assert_eq!(answer_text(r#"{"type":"pong"}"#).unwrap(), None);
        assert!(answer_text("hello").is_err());
        assert!(answer_text(r#"{"type":"shout"}"#).is_err());
    }
}
