//! The load client: a running jetim reached the way OpenIM clients reach it. Users are
//! registered and groups created through the REST API; every simulated user holds its own
//! WebSocket to the gateway and speaks as one of the official SDKs does ([`Sdk`]): the JS
//! SDK's JSON envelope, or the native Go SDK's gzip'd gob.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use anyhow::{Context as _, bail};
use base64::Engine as _;
use futures::{SinkExt as _, StreamExt as _};
use jetim_common::auth::{Platform, TokenService};
use jetim_common::config::Config;
use jetim_gateway::{envelope, gob};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use super::Figure;

pub(crate) type Socket = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

/// Request identifiers of the gateway protocol.
pub(crate) const GET_NEWEST_SEQ: i32 = 1001;
pub(crate) const PULL_BY_SEQ_LIST: i32 = 1002;
pub(crate) const SEND_MSG: i32 = 1003;
pub(crate) const PUSH_MSG: i32 = 2001;

/// Which official OpenIM client the load client speaks as (`shared/reference/gateway.md`
/// §2 and §4).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Sdk {
    /// `@openim/client-sdk` in a browser: JSON envelopes with base64 data, no compression,
    /// the in-band handshake result (`isMsgResp=true`), the web platform.
    #[default]
    Js,
    /// The native Go SDK of OpenIM's mobile and desktop apps: gob envelopes, every frame
    /// gzip'd both ways (`compression=gzip`), no handshake frame, the Android platform.
    Go,
}

impl Sdk {
    /// The platform its connections log in as.
    pub(crate) fn platform(self) -> Platform {
        match self {
            Self::Js => Platform::WEB,
            Self::Go => Platform::ANDROID,
        }
    }

    /// Its name in reports.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Js => "js",
            Self::Go => "go",
        }
    }
}

/// How the load client opens its connections.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct Connecting {
    /// The client the load speaks as.
    #[arg(long, value_enum, default_value_t = Sdk::Js)]
    pub(crate) sdk: Sdk,
    /// Connections opened at once while connecting.
    #[arg(long, default_value_t = 64)]
    pub(crate) connect_concurrency: usize,
    /// Connections per 127.0.0.x source address; the bench binds ports 10,000 and up, about
    /// 55,000 per address, less those in use.
    #[arg(long, default_value_t = 25_000)]
    pub(crate) per_address: usize,
}

/// The running jetim under test: its REST API, its gateway, and the token service.
pub(crate) struct Stack {
    http: reqwest::Client,
    api: String,
    admin_token: String,
    tokens: TokenService,
    pub(crate) gateway: SocketAddr,
    /// The client the connections speak as.
    pub(crate) sdk: Sdk,
    /// The local port the next connection tries first (see [`bind_source`]).
    next_port: std::sync::atomic::AtomicUsize,
}

/// A listen address as a client dials it: `0.0.0.0` means this machine.
fn dialable(listen: SocketAddr) -> SocketAddr {
    if listen.ip().is_unspecified() {
        SocketAddr::from((Ipv4Addr::LOCALHOST, listen.port()))
    } else {
        listen
    }
}

impl Stack {
    pub(crate) async fn open(
        config: &Config,
        jetstream: &async_nats::jetstream::Context,
        sdk: Sdk,
    ) -> anyhow::Result<Self> {
        let http = reqwest::Client::new();
        let api = format!("http://{}", dialable(config.api.listen));
        let admin = config
            .auth
            .admin_user_ids
            .first()
            .context("auth.admin_user_ids is empty: the bench needs an admin")?;
        let mut stack = Self {
            http,
            api,
            admin_token: String::new(),
            tokens: TokenService::open(jetstream, &config.auth, config.nats.stream_replicas)
                .await?,
            gateway: dialable(config.gateway.listen),
            sdk,
            next_port: std::sync::atomic::AtomicUsize::new(0),
        };
        let answer = stack
            .post(
                "/auth/get_admin_token",
                json!({"secret": config.auth.secret, "userID": admin}),
            )
            .await
            .with_context(|| format!("is jetim's API listening on {}?", stack.api))?;
        stack.admin_token = answer["token"]
            .as_str()
            .context("get_admin_token answered without a token")?
            .to_owned();
        Ok(stack)
    }

    /// POSTs to the REST API as the admin; the reply's `data`, or its error.
    pub(crate) async fn post(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        let reply: Value = self
            .http
            .post(format!("{}{path}", self.api))
            .header("operationID", format!("bench-{}", nuid::next()))
            .header("token", &self.admin_token)
            .json(&body)
            .send()
            .await
            .with_context(|| format!("POST {path}"))?
            .json()
            .await
            .with_context(|| format!("POST {path}: the reply is not JSON"))?;
        if reply["errCode"] != 0 {
            bail!("POST {path}: {reply}");
        }
        Ok(reply["data"].clone())
    }

    /// Registers `users` (1,000 a request) and waits until the API knows every one.
    pub(crate) async fn register(&self, users: &[String]) -> anyhow::Result<()> {
        for chunk in users.chunks(1000) {
            let entries: Vec<Value> = chunk
                .iter()
                .map(|user| json!({"userID": user, "nickname": user, "faceURL": ""}))
                .collect();
            self.post("/user/user_register", json!({"users": entries}))
                .await?;
        }
        // The read model follows the log; the last chunk is the last to arrive.
        let last: Vec<&String> = users.iter().rev().take(100).collect();
        for _ in 0..600 {
            let found = self
                .post("/user/get_users_info", json!({"userIDs": last}))
                .await?;
            if found["usersInfo"].as_array().map_or(0, Vec::len) == last.len() {
                return Ok(());
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        bail!("registered users did not reach the read model within 60 s")
    }

    /// A token for `user` on the platform of [`Self::sdk`], issued as `/auth/get_user_token`
    /// issues it.
    pub(crate) async fn token(&self, user: &str) -> anyhow::Result<String> {
        Ok(self.tokens.issue(user, self.sdk.platform()).await?.token)
    }

    /// A token for each of `users`, in order.
    pub(crate) async fn tokens(&self, users: &[String]) -> anyhow::Result<Vec<String>> {
        in_parallel(users.iter(), 32, |user| self.token(user)).await
    }

    /// Opens `user`'s connection as [`Self::sdk`] does, from `source` when given (one source
    /// address runs out of ports), and reads the handshake result where that SDK gets one.
    pub(crate) async fn connect(
        &self,
        user: &str,
        token: &str,
        source: Option<IpAddr>,
    ) -> anyhow::Result<Socket> {
        let socket = tokio::net::TcpSocket::new_v4()?;
        if let Some(source) = source {
            bind_source(&socket, source, &self.next_port)?;
        }
        let stream = socket
            .connect(self.gateway)
            .await
            .with_context(|| format!("connecting to the gateway at {}", self.gateway))?;
        stream.set_nodelay(true)?;
        let platform = self.sdk.platform().id();
        let url = match self.sdk {
            Sdk::Js => format!(
                "ws://{}/?sendID={user}&token={token}&platformID={platform}&operationID=bench-connect&isBackground=false&isMsgResp=true&sdkType=js",
                self.gateway
            ),
            Sdk::Go => format!(
                "ws://{}/?sendID={user}&token={token}&platformID={platform}&operationID=bench-connect&isBackground=false&sdkVersion=bench&compression=gzip",
                self.gateway
            ),
        };
        // Small buffers: thousands of these live in one process.
        let config = WebSocketConfig::default()
            .read_buffer_size(4096)
            .write_buffer_size(0);
        let (mut socket, _) =
            tokio_tungstenite::client_async_with_config(url, stream, Some(config))
                .await
                .with_context(|| format!("the WebSocket handshake for {user}"))?;
        if self.sdk == Sdk::Go {
            // Without isMsgResp a refusal is an HTTP answer instead of the upgrade.
            return Ok(socket);
        }
        match socket.next().await {
            Some(Ok(Message::Text(text))) => {
                let result: Value = serde_json::from_str(text.as_str())?;
                if result["errCode"] != 0 {
                    bail!("the gateway refused {user}: {result}");
                }
            }
            other => bail!("no handshake result for {user}: {other:?}"),
        }
        Ok(socket)
    }

    /// Issues every user a token and opens its connection: the sockets, in `users` order,
    /// and the connect rate.
    pub(crate) async fn connect_all(
        &self,
        users: &[String],
        how: &Connecting,
    ) -> anyhow::Result<(Vec<Socket>, Figure)> {
        eprintln!("issuing {} tokens", users.len());
        let tokens = self.tokens(users).await?;
        eprintln!("opening {} connections", users.len());
        let started = std::time::Instant::now();
        let sockets = in_parallel(
            users.iter().zip(&tokens).enumerate(),
            how.connect_concurrency,
            |(index, (user, token))| {
                self.connect(user, token, Some(source_address(index, how.per_address)))
            },
        )
        .await?;
        let figure = Figure::new(
            "connect (handshakes)",
            users.len() as u64,
            started.elapsed(),
        );
        Ok((sockets, figure))
    }
}

#[derive(Serialize)]
struct OutEnvelope<'a> {
    #[serde(rename = "reqIdentifier")]
    req_identifier: i32,
    #[serde(rename = "sendID")]
    send_id: &'a str,
    #[serde(rename = "operationID")]
    operation_id: &'a str,
    #[serde(rename = "msgIncr")]
    msg_incr: &'a str,
    data: String,
}

/// A reply or push from the gateway, `data` decoded from base64.
#[derive(Debug)]
pub(crate) struct Incoming {
    pub(crate) req_identifier: i32,
    pub(crate) msg_incr: String,
    pub(crate) err_code: i32,
    pub(crate) err_msg: String,
    pub(crate) data: Vec<u8>,
}

#[derive(Deserialize)]
struct InEnvelope<'a> {
    #[serde(rename = "reqIdentifier")]
    req_identifier: i32,
    #[serde(rename = "msgIncr", default)]
    msg_incr: String,
    #[serde(rename = "errCode", default)]
    err_code: i32,
    #[serde(rename = "errMsg", default)]
    err_msg: String,
    #[serde(borrow)]
    data: Option<std::borrow::Cow<'a, str>>,
}

/// A binary request frame as `sdk` writes it.
pub(crate) fn request(sdk: Sdk, user: &str, identifier: i32, incr: &str, data: &[u8]) -> Message {
    let bytes = match sdk {
        Sdk::Js => {
            let envelope = OutEnvelope {
                req_identifier: identifier,
                send_id: user,
                operation_id: incr,
                msg_incr: incr,
                data: base64::engine::general_purpose::STANDARD.encode(data),
            };
            serde_json::to_vec(&envelope).unwrap_or_default()
        }
        Sdk::Go => envelope::gzip_bytes(&gob::encode_request(&envelope::Request {
            req_identifier: identifier,
            token: String::new(),
            send_id: user.to_owned(),
            operation_id: incr.to_owned(),
            msg_incr: incr.to_owned(),
            data: data.to_vec(),
        })),
    };
    Message::Binary(bytes.into())
}

/// The frame size a compressed reply is inflated against; the gateway's `gunzip` lets it
/// grow 64 times that, room for a pull of 1,000 messages.
const REPLY_FRAME_BYTES: usize = 1 << 20;

/// Reads a frame from the gateway as `sdk` reads it: `Some` for a binary envelope, `None`
/// for control and heartbeat frames.
pub(crate) fn incoming(sdk: Sdk, frame: &Message) -> anyhow::Result<Option<Incoming>> {
    let Message::Binary(bytes) = frame else {
        return Ok(None);
    };
    if sdk == Sdk::Go {
        let plain = envelope::gunzip(bytes, REPLY_FRAME_BYTES)
            .context("a binary frame that is not gzip")?;
        let reply = gob::decode_reply(&plain).context("a binary frame that is not gob")?;
        return Ok(Some(Incoming {
            req_identifier: reply.req_identifier,
            msg_incr: reply.msg_incr,
            err_code: reply.err_code,
            err_msg: reply.err_msg,
            data: reply.data.unwrap_or_default(),
        }));
    }
    let envelope: InEnvelope<'_> =
        serde_json::from_slice(bytes).context("a binary frame that is not an envelope")?;
    let data = match envelope.data {
        Some(text) => base64::engine::general_purpose::STANDARD.decode(text.as_bytes())?,
        None => Vec::new(),
    };
    Ok(Some(Incoming {
        req_identifier: envelope.req_identifier,
        msg_incr: envelope.msg_incr,
        err_code: envelope.err_code,
        err_msg: envelope.err_msg,
        data,
    }))
}

/// A request the gateway answered with an error code.
#[derive(Debug)]
pub(crate) struct Refused {
    pub(crate) identifier: i32,
    pub(crate) code: i32,
    pub(crate) message: String,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "request {} failed: {} {}",
            self.identifier, self.code, self.message
        )
    }
}

impl std::error::Error for Refused {}

/// OpenIM's code for a server that could not do what it was asked (a database connection it
/// could not get within its wait, among others).
pub(crate) const SERVER_INTERNAL_ERROR: i32 = 500;

/// Sends a request and reads frames until its reply, handing everything else to `other`. A
/// reply with an error code is a [`Refused`].
pub(crate) async fn call(
    sdk: Sdk,
    socket: &mut Socket,
    user: &str,
    identifier: i32,
    incr: &str,
    data: &[u8],
    mut other: impl FnMut(Incoming),
) -> anyhow::Result<Vec<u8>> {
    socket
        .send(request(sdk, user, identifier, incr, data))
        .await?;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let frame = tokio::time::timeout_at(deadline, socket.next())
            .await
            .with_context(|| format!("no reply to {identifier} within 30 s"))?
            .context("the gateway closed the connection")??;
        if let Some(incoming) = incoming(sdk, &frame)? {
            if incoming.msg_incr == incr {
                if incoming.err_code != 0 {
                    return Err(Refused {
                        identifier,
                        code: incoming.err_code,
                        message: incoming.err_msg,
                    }
                    .into());
                }
                return Ok(incoming.data);
            }
            other(incoming);
        }
    }
}

/// Runs `task` over `items` with at most `limit` in flight, in order of completion.
pub(crate) async fn in_parallel<T, R, F>(
    items: impl IntoIterator<Item = T>,
    limit: usize,
    task: impl Fn(T) -> F,
) -> anyhow::Result<Vec<R>>
where
    F: std::future::Future<Output = anyhow::Result<R>>,
{
    futures::stream::iter(items.into_iter().map(task))
        .buffered(limit.max(1))
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect()
}

/// The lowest local port [`bind_source`] hands out.
const FIRST_LOCAL_PORT: u16 = 10_000;

/// Binds `socket` to `source` and a port of its own choosing, the next free one from
/// `next_port` on. Binding to port 0 makes the kernel search for a free port among every
/// bound one: with thousands of connections that search was about 70% of the machine's CPU
/// while a `connect` run opened them (perf), and it set the connect rate, not jetim.
fn bind_source(
    socket: &tokio::net::TcpSocket,
    source: IpAddr,
    next_port: &std::sync::atomic::AtomicUsize,
) -> anyhow::Result<()> {
    // A port whose last connection is in TIME_WAIT (an earlier run's) can be bound again.
    socket.set_reuseaddr(true)?;
    let ports = usize::from(u16::MAX - FIRST_LOCAL_PORT) + 1;
    for _ in 0..ports {
        let offset = next_port.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % ports;
        let port = FIRST_LOCAL_PORT + u16::try_from(offset).unwrap_or(0);
        match socket.bind(SocketAddr::new(source, port)) {
            Ok(()) => return Ok(()),
            // Taken: a listener, or another process's connection.
            Err(error) if error.kind() == std::io::ErrorKind::AddrInUse => {}
            Err(error) => {
                return Err(error).with_context(|| format!("binding to {source}:{port}"));
            }
        }
    }
    bail!("no free local port on {source}")
}

/// The source address for connection `index`: 127.0.0.1 for the first `per_address`, then
/// 127.0.0.2, and so on (all of 127/8 is this machine).
pub(crate) fn source_address(index: usize, per_address: usize) -> IpAddr {
    let nth = u32::try_from(index / per_address.max(1)).unwrap_or(0) + 1;
    IpAddr::V4(Ipv4Addr::from(u32::from(Ipv4Addr::new(127, 0, 0, 0)) + nth))
}

/// A short tag that keeps this run's user IDs apart from an earlier run's on the same stack.
pub(crate) fn run_tag() -> String {
    let millis = u64::try_from(jetim_common::clock::now_millis()).unwrap_or(0);
    format!("{:x}", millis % 0xff_ffff)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_move_to_the_next_loopback_address_when_one_is_full() {
        assert_eq!(source_address(0, 25_000).to_string(), "127.0.0.1");
        assert_eq!(source_address(24_999, 25_000).to_string(), "127.0.0.1");
        assert_eq!(source_address(25_000, 25_000).to_string(), "127.0.0.2");
        assert_eq!(source_address(300 * 256, 256).to_string(), "127.0.1.45");
    }

    #[test]
    fn requests_and_replies_round_trip_the_json_envelope() {
        let frame = request(Sdk::Js, "u1", SEND_MSG, "7", b"\x01\x02");
        let Message::Binary(bytes) = &frame else {
            panic!("binary")
        };
        let sent: Value = serde_json::from_slice(bytes).unwrap();
        assert_eq!(
            sent,
            json!({"reqIdentifier": 1003, "sendID": "u1", "operationID": "7", "msgIncr": "7", "data": "AQI="})
        );
        let reply = Message::Binary(
            br#"{"reqIdentifier":1003,"msgIncr":"7","operationID":"7","errCode":0,"errMsg":"","data":"AQI="}"#
                .to_vec()
                .into(),
        );
        let incoming = incoming(Sdk::Js, &reply).unwrap().unwrap();
        assert_eq!(
            (incoming.req_identifier, incoming.msg_incr.as_str()),
            (1003, "7")
        );
        assert_eq!(incoming.data, [1, 2]);
        let refused = Message::Binary(
            br#"{"reqIdentifier":1003,"msgIncr":"8","errCode":1004,"errMsg":"no","data":null}"#
                .to_vec()
                .into(),
        );
        let incoming = super::incoming(Sdk::Js, &refused).unwrap().unwrap();
        assert_eq!((incoming.err_code, incoming.data.len()), (1004, 0));
        assert!(
            super::incoming(Sdk::Js, &Message::Ping(Vec::new().into()))
                .unwrap()
                .is_none()
        );
        assert!(super::incoming(Sdk::Js, &Message::Binary(b"[]".to_vec().into())).is_err());
    }

    #[test]
    fn requests_and_replies_round_trip_the_go_sdks_gzipped_gob() {
        let Message::Binary(bytes) = request(Sdk::Go, "u1", SEND_MSG, "7", b"\x01\x02") else {
            panic!("binary")
        };
        // What the gateway reads from a connection with compression=gzip and no sdkType.
        let sent = envelope::decode(
            &bytes,
            jetim_gateway::handshake::Envelope::Gob,
            true,
            1 << 20,
        )
        .unwrap();
        assert_eq!(
            (
                sent.req_identifier,
                sent.send_id.as_str(),
                sent.msg_incr.as_str()
            ),
            (1003, "u1", "7")
        );
        assert_eq!(sent.data, [1, 2]);
        // And what it writes back.
        let reply = envelope::Reply {
            req_identifier: 2001,
            msg_incr: String::new(),
            operation_id: "op".to_owned(),
            err_code: 0,
            err_msg: String::new(),
            data: Some(vec![3, 4]),
        };
        let frame = envelope::encode(&reply, jetim_gateway::handshake::Envelope::Gob, true);
        let pushed = incoming(Sdk::Go, &Message::Binary(frame.into()))
            .unwrap()
            .unwrap();
        assert_eq!((pushed.req_identifier, pushed.data), (2001, vec![3, 4]));
        // A frame that is not gzip is an error, not a panic.
        assert!(incoming(Sdk::Go, &Message::Binary(b"plain".to_vec().into())).is_err());
    }
}
