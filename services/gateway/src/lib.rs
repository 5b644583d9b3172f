//! The OpenIM WebSocket gateway (port 10001 by default), `shared/reference/gateway.md`.
//!
//! - [`handshake`]: the query every SDK sends, checked in OpenIM's order.
//! - [`envelope`]: the request and reply envelopes: JSON for the JS SDK, [`gob`] for the Go
//!   SDK, with optional gzip.
//! - [`requests`]: the requests served over a connection (1001–1007 by the messaging code the
//!   REST routes use too; 2003 logout, 2004 background, 2005 status subscriptions).
//! - [`connection`]: one connection's bounded outbound queue, its close, and the ordering of
//!   a sender's reply before its own push.
//! - [`hub`]: the connections by user, the NATS subscriptions that bring them pushes (2001),
//!   kicks (2002) and status changes (2005), and presence.
//! - [`socket`]: the upgrade to a WebSocket, and the socket a connection runs on: the
//!   gateway reads and writes its own frames, a long message's straight into and from a
//!   buffer of its own, so that nothing of it stays with the connection.
//!
//! A connection is accepted on any path. Its token must be valid and bound to the user and
//! platform the query names. Then one task reads frames and answers each request in order;
//! another writes from a bounded queue, and a client that lets the queue fill is closed with
//! a reason rather than having frames dropped. A text ping gets a text pong at once; web
//! connections get WebSocket pings; a connection silent for longer than the read timeout is
//! closed. At shutdown every client gets a close frame (1001, going away), so it reconnects
//! to another gateway.
//!
//! Beyond `gateway.max_connections` connections, a handshake is refused with 1601.

pub mod connection;
pub mod envelope;
pub mod gob;
pub mod handshake;
pub mod hub;
pub mod requests;
pub mod socket;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Query, Request, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::serve::ListenerExt as _;
use futures::stream::{AbortRegistration, Abortable};
use futures::{SinkExt as _, StreamExt as _};
use jetim_common::auth::{Platform, TokenService};
use jetim_common::config::GatewayConfig;
use jetim_common::errcode::Code;
use jetim_common::presence::PresenceStore;
use jetim_common::shutdown::CancellationToken;
use jetim_streams::EventLog;
use prost::Message as _;

use crate::connection::Connection;
use crate::handshake::{ConnectArgs, Refusal};
use crate::hub::{Hub, SharedSubscriptions};
use crate::requests::After;
use crate::socket::{Message, Upgrade, WebSocket, close_code};

/// The handles every connection shares; cheap to clone.
#[derive(Clone)]
pub struct GatewayState {
    /// Checks tokens.
    pub tokens: TokenService,
    /// The read models.
    pub db: deadpool_postgres::Pool,
    /// Reads what a send decides on, on `db`.
    pub send_facts: jetim_readmodel::send_facts::FactsReader,
    /// The event log's writer (and, under it, the NATS connection).
    pub log: Arc<EventLog>,
    /// Who is online.
    pub presence: PresenceStore,
    /// Frame and queue limits.
    pub config: GatewayConfig,
    /// Rules for sending messages.
    pub messaging: jetim_common::config::MessagingConfig,
    /// The connection to hear fan-out pushes on when this process' push service publishes
    /// on it and hands them to this gateway directly (made with `no_echo`; see
    /// [`jetim_messaging::delivery::LocalFanout`]); `None`: the log's connection. Only the
    /// gateway the push service hands its pushes to may hear them on that connection.
    pub fanouts_on: Option<async_nats::Client>,
}

/// What every connection task shares.
pub struct Shared {
    /// The handles.
    pub state: GatewayState,
    /// The connections.
    pub hub: Arc<Hub>,
    /// The senders' own pushes waiting for their time.
    pub own_pushes: Arc<connection::OwnPushes>,
}

/// A bound, ready-to-run gateway.
pub struct App {
    listener: tokio::net::TcpListener,
    router: Router,
    hub: Arc<Hub>,
    own_pushes: Arc<connection::OwnPushes>,
    subscriptions: SharedSubscriptions,
}

/// Binds `state.config.listen`.
pub async fn build(state: GatewayState) -> anyhow::Result<App> {
    let listen = state.config.listen;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|error| {
            anyhow::anyhow!("cannot listen on {listen} (setting gateway.listen): {error}")
        })?;
    let hub = Arc::new(Hub::new(
        state.log.nats(),
        state.fanouts_on.clone(),
        state.presence.clone(),
        state.tokens.clone(),
        state.config.deliveries,
    ));
    // In place before the first connection, so no login, logout or push is missed.
    let subscriptions = hub.subscribe_shared().await.map_err(|error| {
        anyhow::anyhow!("cannot subscribe to session control and deliveries: {error}")
    })?;
    let own_pushes = Arc::new(connection::OwnPushes::new(connection::OWN_PUSH_AFTER_REPLY));
    let shared = Arc::new(Shared {
        state,
        hub: Arc::clone(&hub),
        own_pushes: Arc::clone(&own_pushes),
    });
    let router = Router::new().fallback(connect).with_state(shared);
    Ok(App {
        listener,
        router,
        hub,
        own_pushes,
        subscriptions,
    })
}

impl App {
    /// The address the gateway listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    /// The connections this gateway holds.
    pub fn hub(&self) -> Arc<Hub> {
        Arc::clone(&self.hub)
    }

    /// This gateway instance's ID, as presence and session control name it.
    pub fn instance(&self) -> &str {
        self.hub.instance()
    }

    /// Serves until `shutdown` is cancelled, then closes every connection with 1001 (going
    /// away) and waits up to [`SHUTDOWN_WAIT`] for them to go. If one of the gateway's
    /// subscriptions for every user ends (the NATS client closed under it), it stops the
    /// same way and fails: a gateway that hears no pushes or kicks must not go on taking
    /// connections.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> std::io::Result<()> {
        let confirming = tokio::spawn(Arc::clone(&self.hub).confirm_presence(shutdown.clone()));
        let own_pushes = Arc::clone(&self.own_pushes);
        // Aborted once every connection is closed (below), not at `shutdown`.
        let releasing = tokio::spawn(async move { own_pushes.run().await });
        let SharedSubscriptions {
            sessions,
            fanouts,
            deliveries,
        } = self.subscriptions;
        let mut followers = tokio::task::JoinSet::new();
        let hub = Arc::clone(&self.hub);
        followers.spawn(async move {
            hub.follow_sessions(sessions).await;
            "session control"
        });
        let hub = Arc::clone(&self.hub);
        followers.spawn(async move {
            hub.follow_fanouts(fanouts).await;
            "fan-out push"
        });
        if let Some(deliveries) = deliveries {
            let hub = Arc::clone(&self.hub);
            followers.spawn(async move {
                hub.follow_deliveries(deliveries).await;
                "push"
            });
        }
        let serving = shutdown.child_token();
        // No Nagle: a connection's frames are small and often follow one another by less
        // than a round trip (a reply, then the push of the message it answered); with it,
        // the second waits for the client's delayed ACK, up to 40 ms on Linux.
        let listener = self.listener.tap_io(|stream| {
            if let Err(error) = stream.set_nodelay(true) {
                tracing::warn!(%error, "cannot set TCP_NODELAY on a connection");
            }
        });
        let mut server = tokio::spawn(
            axum::serve(listener, self.router)
                .with_graceful_shutdown(serving.clone().cancelled_owned())
                .into_future(),
        );
        let (served, ended) = tokio::select! {
            served = &mut server => (Some(served), None),
            Some(ended) = followers.join_next() => (None, Some(ended)),
        };
        serving.cancel();
        let served = match served {
            Some(served) => served,
            None => server.await,
        }
        .unwrap_or_else(|error| Err(std::io::Error::other(error)));
        self.hub
            .close_all(
                close_code::AWAY,
                "the server is shutting down",
                SHUTDOWN_WAIT,
            )
            .await;
        confirming.abort();
        releasing.abort();
        followers.abort_all();
        match ended {
            Some(Ok(what)) => Err(std::io::Error::other(format!(
                "the gateway's {what} subscription ended; it stopped taking connections"
            ))),
            Some(Err(error)) => Err(std::io::Error::other(format!(
                "the task following the gateway's shared subscriptions failed ({error}); it \
                 stopped taking connections"
            ))),
            None => served,
        }
    }
}

/// Locks `mutex`, poisoned or not: what the gateway keeps under its locks stays whole if a
/// holder panics (each change is one insert, removal or push).
pub(crate) fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// How long a stopping gateway waits for its connections to close.
pub const SHUTDOWN_WAIT: Duration = Duration::from_secs(5);

/// The in-band success frame.
const CONNECTED: &str = r#"{"errCode":0,"errMsg":"","errDlt":""}"#;

async fn check(state: &GatewayState, args: &ConnectArgs) -> Result<(), Refusal> {
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

/// The most a connection's read buffer holds, and only while it has bytes to read: a quiet
/// connection holds none. Client frames are small: a send with a short text, and the token
/// the SDK repeats in every frame, fits in one read. A longer frame is read into an
/// allocation of its own length ([`socket::reader`]). tungstenite's default buffer, 128 KiB
/// held by every connection and zeroed before every read, was most of the gateway's memory
/// with thousands of connections and its largest CPU cost (`jetim bench connect` and `chat`).
const READ_BUFFER_BYTES: usize = 2048;

async fn connect(
    State(shared): State<Arc<Shared>>,
    Query(query): Query<HashMap<String, String>>,
    request: Request,
) -> Response {
    let (mut parts, _) = request.into_parts();
    let upgrade = Upgrade::from_parts(&mut parts);
    let limits = socket::Limits {
        max_frame_bytes: shared.state.config.max_frame_bytes,
        read_buffer_bytes: READ_BUFFER_BYTES,
    };
    let in_band = handshake::wants_in_band_result(&query);
    if shared.hub.connection_count() >= shared.state.config.max_connections {
        let refusal = Refusal {
            code: Code::ConnOverMaxNumLimit,
            detail: format!(
                "this gateway holds its limit of {} connections (setting gateway.max_connections)",
                shared.state.config.max_connections
            ),
        };
        return match upgrade {
            Ok(upgrade) if in_band => {
                upgrade.on_upgrade(limits, move |socket| refuse_in_band(socket, refusal))
            }
            _ => refused(&refusal),
        };
    }
    let compression = parts
        .headers
        .get("compression")
        .and_then(|value| value.to_str().ok());
    let checked = match handshake::parse(&query, compression) {
        Ok(args) => check(&shared.state, &args).await.map(|()| args),
        Err(refusal) => Err(refusal),
    };
    let upgrade = match upgrade {
        Ok(upgrade) => upgrade,
        Err(lacking) => {
            let refusal = checked.err().unwrap_or_else(|| Refusal {
                code: Code::ConnArgs,
                detail: format!("not a WebSocket upgrade: {lacking}"),
            });
            return refused(&refusal);
        }
    };
    match checked {
        Ok(args) => {
            upgrade.on_upgrade(limits, move |socket| serve_connection(socket, shared, args))
        }
        Err(refusal) if in_band => {
            upgrade.on_upgrade(limits, move |socket| refuse_in_band(socket, refusal))
        }
        Err(refusal) => refused(&refusal),
    }
}

/// The in-band refusal the JS SDK reads: the result as a text frame, then a close.
async fn refuse_in_band(socket: WebSocket, refusal: Refusal) {
    let WebSocket {
        mut reader,
        mut writer,
    } = socket;
    let _ = writer.send(Message::Text(refusal.to_json().into())).await;
    let _ = writer.send(Message::Close(None)).await;
    let _ = writer.close().await;
    linger(&mut reader).await;
}

/// A refusal the native SDK reads from the HTTP body of a refused upgrade.
fn refused(refusal: &Refusal) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
        refusal.to_json(),
    )
        .into_response()
}

/// How long a connection the server closed waits for the client's close.
const CLOSE_LINGER: Duration = Duration::from_secs(2);

/// Reads, and drops, what a client still sends after the server closed its connection,
/// until its close frame comes, it goes, or [`CLOSE_LINGER`] passes. A socket let go with
/// bytes unread is reset rather than closed (RFC 6455 §7.1.1 asks the server to wait for
/// the client's close), and a reset can cost the client the frames just written to it: a
/// kick, a reply, the close frame with its reason.
async fn linger<S>(stream: &mut S)
where
    S: futures::Stream<Item = Result<Message, socket::ReadError>> + Unpin,
{
    let _ = tokio::time::timeout(CLOSE_LINGER, async {
        while let Some(Ok(frame)) = stream.next().await {
            if matches!(frame, Message::Close(_)) {
                break;
            }
        }
    })
    .await;
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

async fn serve_connection(socket: WebSocket, shared: Arc<Shared>, args: ConnectArgs) {
    let WebSocket {
        reader: mut stream,
        writer: mut sink,
    } = socket;
    let config = &shared.state.config;
    let (connection, outbox, reader_closed) =
        Connection::new(shared.hub.next_connection_id(), &args, config.write_queue);
    let connection = Arc::new(connection);
    let (in_band_result, platform) = (args.in_band_result, args.platform);
    // The token and the operationID are not needed again.
    drop(args);
    // Registering and unregistering are boxed, like each frame's work below: their state
    // would otherwise be part of every idle connection's task (this task was 6 KB with
    // them inline, 4 KB with just these two, `jetim bench connect` with heaptrack).
    //
    // Subscribed before the client hears it is connected, so nothing sent to it after that
    // is missed.
    Box::pin(shared.hub.register(&connection)).await;
    if in_band_result && sink.send(Message::Text(CONNECTED.into())).await.is_err() {
        Box::pin(shared.hub.unregister(&connection)).await;
        return;
    }
    let ping_every = (platform == Platform::WEB).then(|| Duration::from_secs(config.web_ping_secs));
    let writer = {
        let connection = Arc::clone(&connection);
        tokio::spawn(async move { connection.write(sink, outbox, ping_every).await })
    };
    let read_timeout = Duration::from_secs(config.read_timeout_secs);
    tracing::debug!(user = %connection.user_id, platform = platform.id(), "connected");
    let shared_ref: &Shared = &shared;
    let connection_ref = &connection;
    let client_may_send = read_frames(
        connection_ref,
        &mut stream,
        reader_closed,
        read_timeout,
        |frame| Box::pin(async move { serve_frame(shared_ref, connection_ref, &frame).await }),
    )
    .await;
    connection.close(close_code::NORMAL, "", None);
    Box::pin(shared.hub.unregister(&connection)).await;
    let _ = writer.await;
    if client_may_send {
        Box::pin(linger(&mut stream)).await;
    }
    tracing::debug!(user = %connection.user_id, "disconnected");
}

/// Reads frames until the client goes, a frame closes the connection, nothing arrives
/// within `read_timeout`, or the connection is closed from elsewhere (which `closed`, the
/// registration [`Connection::new`] gave, tells). Text pings are answered here; binary
/// frames go to `on_binary`, which says whether to go on. Returns whether the client may
/// still send: not once it has closed or gone.
async fn read_frames<S, F, Answered>(
    connection: &Connection,
    stream: &mut S,
    closed: AbortRegistration,
    read_timeout: Duration,
    mut on_binary: F,
) -> bool
where
    S: futures::Stream<Item = Result<Message, socket::ReadError>> + Unpin,
    F: FnMut(axum::body::Bytes) -> Answered,
    Answered: std::future::Future<Output = bool>,
{
    // One wait for the close (the frames end with it) and one timer serve the connection's
    // life: a new wait and a new timeout for each frame cost a registration with the close
    // and with the timer wheel, and its removal, on every frame. The timer moves only when
    // it fires: `due` is when the read timeout runs out, counted from the end of the last
    // frame's work.
    let mut frames = Abortable::new(stream, closed);
    let mut due = tokio::time::Instant::now() + read_timeout;
    let timeout = tokio::time::sleep_until(due);
    tokio::pin!(timeout);
    loop {
        let next = tokio::select! {
            biased;
            next = frames.next() => next,
            () = &mut timeout => {
                if due > timeout.deadline() {
                    timeout.as_mut().reset(due);
                    continue;
                }
                connection.close(close_code::POLICY, "no frame within the read timeout", None);
                return true;
            }
        };
        let frame = match next {
            // Closed from elsewhere: the client may still send.
            None if frames.is_aborted() => return true,
            None => return false,
            Some(Err(error)) => {
                connection.close(error.close_code(), &error.to_string(), None);
                return true;
            }
            Some(Ok(frame)) => frame,
        };
        let keep_going = match frame {
            Message::Text(text) => match answer_text(text.as_str()) {
                Ok(Some(pong)) => connection.send(Message::Text(pong.into())),
                Ok(None) => true,
                Err(reason) => {
                    connection.close(close_code::PROTOCOL, &reason, None);
                    false
                }
            },
            Message::Binary(bytes) => on_binary(bytes).await,
            Message::Ping(payload) => connection.send(Message::Pong(payload)),
            // The reader hands over whole messages: a raw frame is only ever sent.
            Message::Pong(_) | Message::Frame(_) => true,
            Message::Close(_) => return false,
        };
        if !keep_going {
            return true;
        }
        due = tokio::time::Instant::now() + read_timeout;
    }
}

/// The one field of a 1003's `MsgData` the gateway reads before serving it (field 4, as in
/// `schemas/proto/openim/sdkws.proto`). prost skips the rest, so this costs one string, not
/// a second decode of the whole message, which the send does anyway.
#[derive(Clone, PartialEq, prost::Message)]
struct SentClientMsgId {
    #[prost(string, tag = "4")]
    client_msg_id: String,
}

/// Reads and answers one binary frame; `false` when the connection is to close.
async fn serve_frame(shared: &Shared, connection: &Arc<Connection>, frame: &[u8]) -> bool {
    let request = match connection.decode(frame, shared.state.config.max_frame_bytes) {
        Ok(request) => request,
        Err(bad) => {
            connection.close(close_code::INVALID, &bad.0, None);
            return false;
        }
    };
    if request.send_id != connection.user_id {
        connection.close(
            close_code::POLICY,
            &format!("sendID {:?} is not this connection's user", request.send_id),
            None,
        );
        return false;
    }
    // The sender's own push of this message waits for the reply.
    let held = (request.req_identifier == requests::SEND_MSG)
        .then(|| SentClientMsgId::decode(request.data.as_slice()).ok())
        .flatten()
        .map(|message| message.client_msg_id)
        .filter(|client_msg_id| !client_msg_id.is_empty());
    if let Some(client_msg_id) = &held {
        connection.hold(client_msg_id);
    }
    let (reply, after) = requests::serve(shared, connection, &request).await;
    let frame = connection.encode(&reply);
    match after {
        After::Continue => {
            let queued = connection.send(frame);
            if let Some(client_msg_id) = held {
                shared.own_pushes.release_later(connection, client_msg_id);
            }
            queued
        }
        After::Close => {
            connection.close(close_code::NORMAL, "logged out", Some(frame));
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use futures::StreamExt as _;
    use jetim_common::auth::Platform;

    use super::{SentClientMsgId, answer_text, read_frames};
    use crate::connection::Connection;
    use crate::handshake::{ConnectArgs, Envelope};
    use crate::socket::{Message, ReadError, close_code};

    #[test]
    fn a_sends_client_msg_id_is_read_alone() {
        use jetim_schemas::openim::sdkws::MsgData;
        use prost::Message as _;
        let message = MsgData {
            send_id: "alice".into(),
            recv_id: "bob".into(),
            client_msg_id: "c-1".into(),
            content: b"{\"content\":\"hi\"}".to_vec(),
            seq: 7,
            ..MsgData::default()
        };
        let read = SentClientMsgId::decode(message.encode_to_vec().as_slice()).unwrap();
        assert_eq!(read.client_msg_id, "c-1");
        assert!(SentClientMsgId::decode(&b"\xff\xff"[..]).is_err());
    }

    /// A channel keeps no buffer of its own to let go of.
    impl crate::socket::Shrink for futures::channel::mpsc::UnboundedSender<Message> {
        fn keeps_more_than_needed(&self) -> bool {
            false
        }

        fn shrink(&mut self) {}
    }

    /// Sends a text ping with `body` and checks that its pong comes at once.
    async fn text_ping(
        client: &futures::channel::mpsc::UnboundedSender<Result<Message, ReadError>>,
        received: &mut futures::channel::mpsc::UnboundedReceiver<Message>,
        body: u32,
    ) {
        let sent_at = tokio::time::Instant::now();
        let ping = format!(r#"{{"type":"ping","body":{body}}}"#);
        client
            .unbounded_send(Ok(Message::Text(ping.into())))
            .unwrap();
        let pong = format!(r#"{{"body":{body},"type":"pong"}}"#);
        assert_eq!(received.next().await, Some(Message::Text(pong.into())));
        assert_eq!(sent_at.elapsed(), Duration::ZERO, "the pong is immediate");
    }

    /// Checks that the next frame the server writes is a WebSocket ping, written `at`.
    async fn web_ping(
        received: &mut futures::channel::mpsc::UnboundedReceiver<Message>,
        at: tokio::time::Instant,
    ) {
        assert_eq!(
            received.next().await,
            Some(Message::Ping(Vec::new().into()))
        );
        assert_eq!(tokio::time::Instant::now(), at);
    }

    /// A web connection whose reader and writer run on channels instead of a socket, under
    /// paused time: the heartbeat, the web pings and the read deadline, which each frame
    /// moves.
    #[tokio::test(start_paused = true)]
    async fn pongs_at_once_pings_the_web_and_closes_a_client_silent_for_the_read_timeout() {
        let args = ConnectArgs {
            user_id: "u".into(),
            token: "t".into(),
            platform: Platform::WEB,
            operation_id: "o".into(),
            envelope: Envelope::Json,
            gzip: false,
            in_band_result: true,
            background: false,
        };
        let (connection, outbox, reader_closed) = Connection::new(1, &args, 8);
        let connection = Arc::new(connection);
        let (client, mut incoming) =
            futures::channel::mpsc::unbounded::<Result<Message, ReadError>>();
        let (written, mut received) = futures::channel::mpsc::unbounded::<Message>();
        let writer = {
            let connection = Arc::clone(&connection);
            tokio::spawn(async move {
                connection
                    .write(written, outbox, Some(Duration::from_secs(27)))
                    .await;
            })
        };
        let reader = {
            let connection = Arc::clone(&connection);
            tokio::spawn(async move {
                read_frames(
                    &connection,
                    &mut incoming,
                    reader_closed,
                    Duration::from_secs(60),
                    |_| async { true },
                )
                .await;
            })
        };
        let start = tokio::time::Instant::now();
        let since_start = |seconds| start + Duration::from_secs(seconds);
        text_ping(&client, &mut received, 1).await;
        // Every 27 s the server pings the web client.
        web_ping(&mut received, since_start(27)).await;
        // A frame at 40 s moves the read deadline to 100 s.
        tokio::time::sleep_until(since_start(40)).await;
        text_ping(&client, &mut received, 2).await;
        web_ping(&mut received, since_start(54)).await;
        web_ping(&mut received, since_start(81)).await;
        // Nothing from the client for 60 s after its last frame: closed, with the reason.
        match received.next().await {
            Some(Message::Close(Some(frame))) => {
                assert_eq!(u16::from(frame.code), close_code::POLICY);
                assert_eq!(frame.reason.as_str(), "no frame within the read timeout");
            }
            other => panic!("expected the close frame, got {other:?}"),
        }
        assert_eq!(start.elapsed(), Duration::from_secs(100));
        reader.await.unwrap();
        writer.await.unwrap();
        assert!(connection.is_closed());
    }

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
