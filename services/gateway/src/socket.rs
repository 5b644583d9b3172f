//! The WebSocket under a connection: the HTTP/1.1 upgrade (RFC 6455 §4.2), then the two
//! halves of the upgraded connection: a [`FrameReader`] reads the client's frames, and a
//! [`FrameWriter`] writes the server's.
//!
//! Why the gateway writes its own frames: tungstenite copies each frame it sends into the
//! connection's write buffer, a `Vec` that keeps the largest size it ever had until the
//! connection closes. One pull reply of 1,000 short messages, about 200 KB, left each
//! connection that got it holding that much more for as long as it stayed: 19 MB of the
//! gateway's peak heap with 100 connections (heaptrack, docs/performance.md). Sending long
//! messages in fragments bounded that by the fragment, at a socket write per fragment: 8 KiB
//! fragments left 10 KB on every connection that had had a long reply, more than an idle
//! connection costs otherwise, and 4 KiB ones cost half as much CPU again per long reply
//! (`jetim bench connect --echo-rounds`). The [`FrameWriter`] instead writes a long
//! message's payload from the message's own buffer, so nothing of it stays, and gathers
//! short frames in a buffer that the connection's writer lets go of once it has been idle
//! a while ([`Shrink`]). axum's `WebSocketUpgrade` hands over tungstenite's whole socket,
//! so the gateway answers the upgrade itself. It reads the client's frames for a like reason
//! ([`reader`]).
//!
//! The handshake is tungstenite's (`derive_accept_key`); this module checks the request's
//! headers as the RFC asks and answers 101. Each frame's header is formatted, and parsed, by
//! tungstenite's [`FrameHeader`].

use std::future::Future;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use axum::body::{Body, Bytes};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Version, header};
use axum::response::Response;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncWrite, ReadHalf, WriteHalf};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::FrameHeader;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Control, Data, OpCode};

pub use reader::{FrameReader, ReadError};
pub use tokio_tungstenite::tungstenite::Message;
pub use tokio_tungstenite::tungstenite::protocol::CloseFrame;

pub mod reader;

/// The HTTP connection a client upgraded.
type Upgraded = TokioIo<hyper::upgrade::Upgraded>;

/// A client's WebSocket: its frames as they are read, and the writer of the server's.
pub struct WebSocket {
    /// The client's frames (whole messages, and pings, pongs and closes).
    pub reader: FrameReader<ReadHalf<Upgraded>>,
    /// Where the server's frames go.
    pub writer: FrameWriter<WriteHalf<Upgraded>>,
}

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
    /// The most a connection's read buffer holds; a longer frame is read into an allocation
    /// of its own.
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
        let on_upgrade = self.on_upgrade;
        tokio::spawn(async move {
            let Ok(upgraded) = on_upgrade.await else {
                return;
            };
            let (read, write) = tokio::io::split(TokioIo::new(upgraded));
            serve(WebSocket {
                reader: FrameReader::new(read, limits.read_buffer_bytes, limits.max_frame_bytes),
                writer: FrameWriter::new(write),
            })
            .await;
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

/// The longest payload of a control frame (RFC 6455 §5.5), read or written.
const MAX_CONTROL_PAYLOAD: usize = 125;

/// A payload at most this long is copied into the writer's buffer with its header, so that
/// a burst of frames is one write; a longer one is written from its own buffer, with what
/// the writer holds before it in the same write.
const COPIED_PAYLOAD_BYTES: usize = 8 * 1024;

/// A writer's buffer keeps the room its largest burst needed, so that a busy connection does
/// not allocate it again for every burst; [`Shrink::shrink`] lets go of more than this, for
/// a connection gone idle.
const KEPT_BUFFER_BYTES: usize = 4 * 1024;

/// Writes the server's frames (RFC 6455 §5.2: unmasked, each message one frame) to a
/// connection as a [`Sink`](futures::Sink) of [`Message`]s. Frames fed before a flush go out
/// together, in as few writes as the socket takes. A payload longer than 8 KiB is not
/// copied: it is written from the message's own buffer, let go of once written.
pub struct FrameWriter<W> {
    io: W,
    /// Frames encoded and not yet written, and a long payload's header.
    buffer: Vec<u8>,
    /// How much of `buffer` is written.
    written: usize,
    /// A long payload, written after `buffer`, and how much of it is.
    long: Option<(Bytes, usize)>,
}

impl<W: AsyncWrite + Unpin> FrameWriter<W> {
    /// A writer of frames to `io`, holding nothing yet.
    pub fn new(io: W) -> Self {
        Self {
            io,
            buffer: Vec::new(),
            written: 0,
            long: None,
        }
    }

    /// Writes what is held: the buffer, then the long payload, both in one write where the
    /// socket takes slices (a TCP socket does).
    fn poll_write_held(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            let held = &self.buffer[self.written..];
            let long = self
                .long
                .as_ref()
                .map_or(&[][..], |(payload, done)| &payload[*done..]);
            if held.is_empty() && long.is_empty() {
                break;
            }
            let io = Pin::new(&mut self.io);
            let wrote = ready!(
                if !held.is_empty() && !long.is_empty() && io.is_write_vectored() {
                    io.poll_write_vectored(cx, &[IoSlice::new(held), IoSlice::new(long)])
                } else if !held.is_empty() {
                    io.poll_write(cx, held)
                } else {
                    io.poll_write(cx, long)
                }
            )?;
            if wrote == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            let from_held = wrote.min(held.len());
            self.written += from_held;
            if let Some((_, done)) = &mut self.long {
                *done += wrote - from_held;
            }
        }
        self.long = None;
        self.buffer.clear();
        self.written = 0;
        Poll::Ready(Ok(()))
    }

    /// Encodes `message` into the buffer, or its header with its payload set aside.
    fn encode(&mut self, message: Message) {
        let (opcode, payload) = match message {
            Message::Text(text) => (OpCode::Data(Data::Text), Bytes::from(text)),
            Message::Binary(data) => (OpCode::Data(Data::Binary), data),
            Message::Ping(data) => (OpCode::Control(Control::Ping), data),
            Message::Pong(data) => (OpCode::Control(Control::Pong), data),
            Message::Close(close) => {
                let payload = close.map_or_else(Bytes::new, |close| {
                    let mut payload = u16::from(close.code).to_be_bytes().to_vec();
                    payload.extend_from_slice(close.reason.as_bytes());
                    payload.into()
                });
                (OpCode::Control(Control::Close), payload)
            }
            Message::Frame(frame) => {
                // Writing to a Vec cannot fail.
                let _ = frame.format(&mut self.buffer);
                return;
            }
        };
        debug_assert!(
            matches!(opcode, OpCode::Data(_)) || payload.len() <= MAX_CONTROL_PAYLOAD,
            "a control frame's payload is at most 125 bytes (RFC 6455 §5.5)"
        );
        let header = FrameHeader {
            opcode,
            ..FrameHeader::default()
        };
        // Writing to a Vec cannot fail.
        let _ = header.format(payload.len() as u64, &mut self.buffer);
        if payload.len() <= COPIED_PAYLOAD_BYTES {
            self.buffer.extend_from_slice(&payload);
        } else {
            self.long = Some((payload, 0));
        }
    }
}

/// A sink that keeps room for its next writes, and can let it go while the connection is idle.
pub trait Shrink {
    /// Whether it keeps more room than an idle connection should hold.
    fn keeps_more_than_needed(&self) -> bool;

    /// Lets go of the room it keeps, if it holds nothing to write.
    fn shrink(&mut self);
}

impl<W> Shrink for FrameWriter<W> {
    fn keeps_more_than_needed(&self) -> bool {
        self.buffer.capacity() > KEPT_BUFFER_BYTES
    }

    fn shrink(&mut self) {
        if self.buffer.is_empty() {
            self.buffer = Vec::new();
        }
    }
}

impl<W: AsyncWrite + Unpin> futures::Sink<Message> for FrameWriter<W> {
    type Error = io::Error;

    /// Ready at once, unless a long payload is waiting: that is written first, so that the
    /// frames after it follow it.
    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.long.is_some() {
            ready!(this.poll_write_held(cx))?;
        }
        Poll::Ready(Ok(()))
    }

    fn start_send(self: Pin<&mut Self>, message: Message) -> io::Result<()> {
        self.get_mut().encode(message);
        Ok(())
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_write_held(cx))?;
        Pin::new(&mut this.io).poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_write_held(cx))?;
        Pin::new(&mut this.io).poll_shutdown(cx)
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
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use axum::http::{Request, Version, header};
    use futures::{SinkExt as _, StreamExt as _};
    use tokio::io::AsyncWrite;
    use tokio_tungstenite::WebSocketStream;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
    use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role};

    use super::{COPIED_PAYLOAD_BYTES, FrameWriter, Message, Shrink as _, Upgrade};

    /// A socket that takes what it is given in one write each, and counts the writes; with
    /// `vectored`, it takes several slices in one.
    #[derive(Default)]
    struct Counting {
        bytes: Vec<u8>,
        writes: usize,
        vectored: bool,
    }

    impl AsyncWrite for Counting {
        fn poll_write(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<std::io::Result<usize>> {
            let this = self.get_mut();
            this.bytes.extend_from_slice(buf);
            this.writes += 1;
            Poll::Ready(Ok(buf.len()))
        }

        fn poll_write_vectored(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            slices: &[std::io::IoSlice<'_>],
        ) -> Poll<std::io::Result<usize>> {
            let this = self.get_mut();
            assert!(
                this.vectored,
                "slices given to a socket that does not take them"
            );
            let mut wrote = 0;
            for slice in slices {
                this.bytes.extend_from_slice(slice);
                wrote += slice.len();
            }
            this.writes += 1;
            Poll::Ready(Ok(wrote))
        }

        fn is_write_vectored(&self) -> bool {
            self.vectored
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn a_client_reads_every_frame_whole_and_in_order_through_a_narrow_pipe() {
        // 64 bytes at a time: every long write is cut short and waits for the reader.
        let (server, client) = tokio::io::duplex(64);
        let long: Vec<u8> = (0..100_000).map(|i| (i % 251) as u8).collect();
        let long_text = "é".repeat(40_000);
        let sent = vec![
            Message::Text("short".into()),
            Message::Binary(long.into()),
            Message::Ping(b"are you there".to_vec().into()),
            Message::Text(long_text.into()),
            Message::Binary(vec![7; COPIED_PAYLOAD_BYTES].into()),
            Message::Pong(Vec::new().into()),
            Message::Binary(vec![8; 70_000].into()),
            Message::Close(Some(CloseFrame {
                code: CloseCode::Policy,
                reason: "no frame within the read timeout".into(),
            })),
        ];
        let writing = {
            let sent = sent.clone();
            tokio::spawn(async move {
                let mut writer = FrameWriter::new(server);
                for message in sent {
                    writer.feed(message).await.unwrap();
                }
                writer.flush().await.unwrap();
                assert!(writer.long.is_none(), "the long payloads are let go of");
                // Dropped here: the client waits for the server to end the connection
                // after the close.
            })
        };
        let mut reader = WebSocketStream::from_raw_socket(client, Role::Client, None).await;
        let mut read = Vec::new();
        while let Some(Ok(message)) = reader.next().await {
            read.push(message);
        }
        assert_eq!(read, sent);
        writing.await.unwrap();
    }

    #[tokio::test]
    async fn short_frames_go_in_one_write_and_a_long_payload_is_never_copied() {
        for vectored in [false, true] {
            let mut writer = FrameWriter::new(Counting {
                vectored,
                ..Counting::default()
            });
            for n in 0..16 {
                writer
                    .feed(Message::Text(format!("frame {n}").into()))
                    .await
                    .unwrap();
            }
            writer.flush().await.unwrap();
            assert_eq!(writer.io.writes, 1, "a burst of short frames is one write");

            writer.io.writes = 0;
            writer.feed(Message::Text("before".into())).await.unwrap();
            let long = vec![1; COPIED_PAYLOAD_BYTES + 1];
            writer.feed(Message::Binary(long.into())).await.unwrap();
            assert!(
                writer.buffer.len() < 20,
                "the buffer holds the short frame and the long one's header: {}",
                writer.buffer.len()
            );
            writer.feed(Message::Text("after".into())).await.unwrap();
            writer.flush().await.unwrap();
            // The short frame and the header, the payload (in one write where the socket
            // takes slices), then the frame after it.
            assert_eq!(writer.io.writes, if vectored { 2 } else { 3 });
            assert!(writer.long.is_none(), "the long payload is let go of");
            let bytes = &writer.io.bytes;
            assert_eq!(&bytes[bytes.len() - b"after".len()..], b"after");
        }
    }

    #[tokio::test]
    async fn a_large_burst_keeps_its_room_until_shrunk() {
        let mut writer = FrameWriter::new(Counting::default());
        assert!(!writer.keeps_more_than_needed());
        for _ in 0..16 {
            writer
                .feed(Message::Binary(vec![0; COPIED_PAYLOAD_BYTES].into()))
                .await
                .unwrap();
        }
        writer.flush().await.unwrap();
        assert_eq!(writer.io.writes, 1, "copied, so one write");
        assert!(writer.keeps_more_than_needed(), "kept for the next burst");

        writer.feed(Message::Text("queued".into())).await.unwrap();
        writer.shrink();
        assert!(
            writer.keeps_more_than_needed(),
            "a buffer with frames to write is kept"
        );
        writer.flush().await.unwrap();
        writer.shrink();
        assert_eq!(writer.buffer.capacity(), 0);
        assert!(!writer.keeps_more_than_needed());
    }

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
