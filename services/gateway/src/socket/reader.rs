//! Reading the client's frames (RFC 6455 §5) into whole messages.
//!
//! Why the gateway reads its own frames: tungstenite reads into a buffer that grows to the
//! longest frame the client ever sent and keeps that size until the connection closes, so
//! one 48 KB send left its connection holding 62 KB for good, ten times what an idle
//! connection costs (`jetim bench connect --unanswered-bytes`). The [`FrameReader`] reads
//! short frames through a small buffer that it lets go of whenever it has nothing left in it
//! and the socket has nothing more to give, and reads a frame that does not fit that buffer
//! straight into an allocation of the frame's own length, handed over with the message. So
//! an idle connection holds no read buffer at all, whatever it was sent before.
//!
//! Each frame's header is parsed by tungstenite's [`FrameHeader`]; the rules of what a
//! client may send, and the assembly of fragmented messages, are here.

use std::io::{self, Cursor};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use axum::body::Bytes;
use bytes::BufMut as _;
use tokio::io::AsyncRead;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{CloseCode, Control, Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::{FrameHeader, Utf8Bytes};

use super::{MAX_CONTROL_PAYLOAD, close_code};

/// Why a client's frames could not be read. The connection is over after any of them.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The socket failed.
    #[error("reading the socket failed: {0}")]
    Io(#[from] io::Error),
    /// A frame broke RFC 6455.
    #[error("{0}")]
    Protocol(&'static str),
    /// A message longer than the gateway takes.
    #[error("a message too long: at least {size} bytes, over the limit of {max}")]
    TooLong {
        /// How long the message was known to be when it was refused.
        size: u64,
        /// The limit.
        max: usize,
    },
    /// A text message, or a close frame's reason, that is not UTF-8.
    #[error("a text message or close reason that is not UTF-8")]
    NotUtf8,
}

impl ReadError {
    /// The close code that tells the client why its connection ends (RFC 6455 §7.4.1).
    pub fn close_code(&self) -> u16 {
        match self {
            Self::Io(_) | Self::Protocol(_) => close_code::PROTOCOL,
            Self::TooLong { .. } => close_code::SIZE,
            Self::NotUtf8 => close_code::INVALID,
        }
    }
}

/// A frame's header and its payload, still masked.
type RawFrame = (FrameHeader, Vec<u8>);

/// A frame whose payload is read straight into its own allocation.
struct LongFrame {
    header: FrameHeader,
    /// The payload so far, with room for all of it.
    payload: Vec<u8>,
    /// The payload's length.
    length: usize,
}

/// The client's messages, read from `io` as a [`Stream`](futures::Stream): text and binary
/// messages whole however the client fragmented them, and pings, pongs and the close as they
/// come. The stream ends after the client's close, when the client goes, or after an error.
pub struct FrameReader<R> {
    io: R,
    /// Bytes read and not yet taken, from `start` on. Empty, and without an allocation,
    /// while nothing is buffered and the socket has nothing to read.
    buffer: Vec<u8>,
    start: usize,
    /// The most `buffer` holds; a frame longer than that is a [`LongFrame`].
    buffer_bytes: usize,
    long: Option<Box<LongFrame>>,
    /// A fragmented message not yet finished: whether it is text, and its data so far.
    partial: Option<(bool, Vec<u8>)>,
    max_message_bytes: usize,
    /// After the client's close, the end of the connection, or an error.
    ended: bool,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    /// A reader of `io`'s frames through a buffer of `buffer_bytes`, that takes messages of
    /// up to `max_message_bytes`.
    pub fn new(io: R, buffer_bytes: usize, max_message_bytes: usize) -> Self {
        Self {
            io,
            buffer: Vec::new(),
            start: 0,
            // Room for the longest header, so that every header can be read into it.
            buffer_bytes: buffer_bytes.max(14),
            long: None,
            partial: None,
            max_message_bytes,
            ended: false,
        }
    }

    /// The next frame, checked against the rules for what a client sends; `None` when the
    /// client ended the connection between two frames.
    fn poll_frame(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<RawFrame>, ReadError>> {
        loop {
            if let Some(long) = &mut self.long {
                while long.payload.len() < long.length {
                    let room = long.length - long.payload.len();
                    let read = ready!(tokio_util::io::poll_read_buf(
                        Pin::new(&mut self.io),
                        cx,
                        &mut (&mut long.payload).limit(room),
                    ))?;
                    if read == 0 {
                        return Poll::Ready(Err(ReadError::Protocol(
                            "the connection ended inside a frame",
                        )));
                    }
                }
                let LongFrame {
                    header, payload, ..
                } = *self.long.take().expect("a long frame is being read");
                return Poll::Ready(Ok(Some((header, payload))));
            }
            let buffered = &self.buffer[self.start..];
            let mut cursor = Cursor::new(buffered);
            let parsed = FrameHeader::parse(&mut cursor).map_err(|_| {
                ReadError::Protocol("a frame with an opcode RFC 6455 does not define")
            })?;
            if let Some((header, length)) = parsed {
                self.check(&header, length)?;
                let header_bytes = usize::try_from(cursor.position()).unwrap_or(usize::MAX);
                // Under the message limit, so it fits a usize.
                let length = usize::try_from(length).unwrap_or(usize::MAX);
                let body = &buffered[header_bytes..];
                if body.len() >= length {
                    let payload = body[..length].to_vec();
                    self.start += header_bytes + length;
                    if self.start == self.buffer.len() {
                        self.buffer.clear();
                        self.start = 0;
                    }
                    return Poll::Ready(Ok(Some((header, payload))));
                }
                if header_bytes.saturating_add(length) > self.buffer_bytes {
                    let mut payload = Vec::with_capacity(length);
                    payload.extend_from_slice(body);
                    // Not kept while the rest of the frame comes, however slowly.
                    self.buffer = Vec::new();
                    self.start = 0;
                    self.long = Some(Box::new(LongFrame {
                        header,
                        payload,
                        length,
                    }));
                    continue;
                }
            }
            // The frame is not all here yet, and fits the buffer once what it holds of it
            // is moved to the front.
            if self.start > 0 {
                self.buffer.drain(..self.start);
                self.start = 0;
            }
            if self.buffer.capacity() < self.buffer_bytes {
                self.buffer
                    .reserve_exact(self.buffer_bytes - self.buffer.len());
            }
            // A frame that does not fit went the long way, so there is room: a read into
            // none would look like the end of the connection.
            let room = self.buffer_bytes - self.buffer.len();
            debug_assert!(room > 0, "a frame that fits the buffer left it full");
            let read = match tokio_util::io::poll_read_buf(
                Pin::new(&mut self.io),
                cx,
                &mut (&mut self.buffer).limit(room),
            ) {
                Poll::Pending => {
                    if self.buffer.is_empty() {
                        // Nothing to keep while the client is quiet.
                        self.buffer = Vec::new();
                    }
                    return Poll::Pending;
                }
                Poll::Ready(read) => read?,
            };
            if read == 0 {
                if !self.buffer.is_empty() {
                    return Poll::Ready(Err(ReadError::Protocol(
                        "the connection ended inside a frame",
                    )));
                }
                if self.partial.is_some() {
                    return Poll::Ready(Err(ReadError::Protocol(
                        "the connection ended inside a fragmented message",
                    )));
                }
                return Poll::Ready(Ok(None));
            }
        }
    }

    /// Whether a frame with `header` and a payload of `length` bytes may come now; checked
    /// before any of its payload is read, so a frame that breaks a rule costs nothing.
    fn check(&self, header: &FrameHeader, length: u64) -> Result<(), ReadError> {
        if length > i64::MAX as u64 {
            return Err(ReadError::Protocol("a frame length with its top bit set"));
        }
        if header.mask.is_none() {
            return Err(ReadError::Protocol("a client's frame must be masked"));
        }
        if header.rsv1 || header.rsv2 || header.rsv3 {
            return Err(ReadError::Protocol(
                "a frame with a reserved bit set, and no extension agreed",
            ));
        }
        match header.opcode {
            OpCode::Control(_) => {
                if !header.is_final {
                    return Err(ReadError::Protocol("a control frame cannot be fragmented"));
                }
                if length > MAX_CONTROL_PAYLOAD as u64 {
                    return Err(ReadError::Protocol(
                        "a control frame's payload is at most 125 bytes",
                    ));
                }
            }
            OpCode::Data(data) => {
                let so_far = match (&self.partial, data) {
                    (None, Data::Continue) => {
                        return Err(ReadError::Protocol(
                            "a continuation frame with no message to continue",
                        ));
                    }
                    (Some(_), Data::Text | Data::Binary) => {
                        return Err(ReadError::Protocol(
                            "a new message before the last one's final frame",
                        ));
                    }
                    (Some((_, data)), _) => data.len() as u64,
                    (None, _) => 0,
                };
                let size = so_far.saturating_add(length);
                if size > self.max_message_bytes as u64 {
                    return Err(ReadError::TooLong {
                        size,
                        max: self.max_message_bytes,
                    });
                }
            }
        }
        Ok(())
    }

    /// The message a checked frame ends, if it ends one.
    fn assemble(
        &mut self,
        header: &FrameHeader,
        mut payload: Vec<u8>,
    ) -> Result<Option<Message>, ReadError> {
        if let Some(mask) = header.mask {
            unmask(&mut payload, mask);
        }
        let (text, data) = match header.opcode {
            OpCode::Control(Control::Ping) => return Ok(Some(Message::Ping(payload.into()))),
            OpCode::Control(Control::Pong) => return Ok(Some(Message::Pong(payload.into()))),
            OpCode::Control(Control::Close) => return close(payload).map(Some),
            OpCode::Data(Data::Continue) => {
                let (text, mut data) = self.partial.take().expect("checked: a message is open");
                // Exactly: the message keeps its allocation, and doubling it could hold
                // twice the limit.
                data.reserve_exact(payload.len());
                data.extend_from_slice(&payload);
                (text, data)
            }
            OpCode::Data(Data::Text) => (true, payload),
            OpCode::Data(Data::Binary) => (false, payload),
            OpCode::Control(Control::Reserved(_)) | OpCode::Data(Data::Reserved(_)) => {
                return Err(ReadError::Protocol(
                    "a frame with an opcode RFC 6455 does not define",
                ));
            }
        };
        if !header.is_final {
            self.partial = Some((text, data));
            return Ok(None);
        }
        Ok(Some(if text {
            Message::Text(Utf8Bytes::try_from(data).map_err(|_| ReadError::NotUtf8)?)
        } else {
            Message::Binary(data.into())
        }))
    }
}

/// The close frame with `payload`: none, or a code and a reason (RFC 6455 §5.5.1).
fn close(payload: Vec<u8>) -> Result<Message, ReadError> {
    let code = match payload[..] {
        [] => return Ok(Message::Close(None)),
        [_] => {
            return Err(ReadError::Protocol(
                "a close frame's body is a code of two bytes, then a reason",
            ));
        }
        [high, low, ..] => CloseCode::from(u16::from_be_bytes([high, low])),
    };
    if !code.is_allowed() {
        return Err(ReadError::Protocol("a close code a client may not send"));
    }
    let reason =
        Utf8Bytes::try_from(Bytes::from(payload).slice(2..)).map_err(|_| ReadError::NotUtf8)?;
    Ok(Message::Close(Some(CloseFrame { code, reason })))
}

/// Undoes a client's masking (RFC 6455 §5.3), eight bytes at a time. tungstenite's own is
/// private to it.
fn unmask(payload: &mut [u8], mask: [u8; 4]) {
    let [a, b, c, d] = mask;
    let wide = u64::from_ne_bytes([a, b, c, d, a, b, c, d]);
    let mut words = payload.chunks_exact_mut(8);
    for word in &mut words {
        let unmasked = u64::from_ne_bytes((&*word).try_into().expect("eight bytes")) ^ wide;
        word.copy_from_slice(&unmasked.to_ne_bytes());
    }
    // The rest starts at a multiple of eight, so at the mask's first byte.
    for (byte, key) in words.into_remainder().iter_mut().zip(mask.iter().cycle()) {
        *byte ^= key;
    }
}

impl<R: AsyncRead + Unpin> futures::Stream for FrameReader<R> {
    type Item = Result<Message, ReadError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.ended {
            return Poll::Ready(None);
        }
        let next = loop {
            let (header, payload) = match ready!(this.poll_frame(cx)) {
                Ok(Some(frame)) => frame,
                Ok(None) => break None,
                Err(error) => break Some(Err(error)),
            };
            match this.assemble(&header, payload) {
                Ok(Some(message)) => break Some(Ok(message)),
                Ok(None) => {}
                Err(error) => break Some(Err(error)),
            }
        };
        if !matches!(next, Some(Ok(ref message)) if !message.is_close()) {
            this.ended = true;
            this.buffer = Vec::new();
            this.long = None;
            this.partial = None;
        }
        Poll::Ready(next)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use futures::StreamExt as _;
    use tokio::io::AsyncWriteExt as _;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

    use super::{FrameReader, Message, ReadError, close_code, unmask};

    const FIN: u8 = 0x80;
    const CONTINUE: u8 = 0x0;
    const TEXT: u8 = 0x1;
    const BINARY: u8 = 0x2;
    const CLOSE: u8 = 0x8;
    const PING: u8 = 0x9;
    const PONG: u8 = 0xA;
    const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

    /// A frame as a client sends it: `first` is its first byte (FIN, the reserved bits and
    /// the opcode), the payload masked with [`MASK`].
    fn frame(first: u8, payload: &[u8]) -> Vec<u8> {
        let mut bytes = unmasked(first, payload);
        // Set the mask bit, put the key after the length, and mask the payload.
        bytes[1] |= 0x80;
        let header = bytes.len() - payload.len();
        let masked = bytes.split_off(header);
        bytes.extend_from_slice(&MASK);
        bytes.extend(
            masked
                .iter()
                .zip(MASK.iter().cycle())
                .map(|(byte, key)| byte ^ key),
        );
        bytes
    }

    /// A frame without a mask, as only a server may send.
    fn unmasked(first: u8, payload: &[u8]) -> Vec<u8> {
        let mut bytes = vec![first];
        match payload.len() {
            length @ 0..126 => bytes.push(length as u8),
            length @ 126..65536 => {
                bytes.push(126);
                bytes.extend_from_slice(&(length as u16).to_be_bytes());
            }
            length => {
                bytes.push(127);
                bytes.extend_from_slice(&(length as u64).to_be_bytes());
            }
        }
        bytes.extend_from_slice(payload);
        bytes
    }

    /// Everything a reader with a buffer of 256 bytes and a limit of 100,000 makes of
    /// `bytes`, fed through a pipe that takes 7 bytes at a time.
    async fn read_all(bytes: Vec<u8>) -> Vec<Result<Message, ReadError>> {
        let (mut client, server) = tokio::io::duplex(7);
        let writing = tokio::spawn(async move {
            // The reader may stop early, and drop its end.
            let _ = client.write_all(&bytes).await;
        });
        let mut reader = FrameReader::new(server, 256, 100_000);
        let mut read = Vec::new();
        while let Some(next) = reader.next().await {
            read.push(next);
        }
        assert!(reader.next().await.is_none(), "an ended reader stays ended");
        // The client's write fails once the reader is gone, if it stopped early.
        drop(reader);
        writing.await.unwrap();
        read
    }

    /// The one error `bytes` ends with, after the messages before it.
    async fn error_of(bytes: Vec<u8>) -> ReadError {
        let mut read = read_all(bytes).await;
        match read.pop() {
            Some(Err(error)) => error,
            other => panic!("an error was expected, not {other:?}"),
        }
    }

    #[tokio::test]
    async fn messages_come_whole_however_the_client_frames_them() {
        let long: Vec<u8> = (0..70_000).map(|i| (i % 251) as u8).collect();
        let mut bytes = frame(FIN | TEXT, b"short");
        bytes.extend(frame(FIN | BINARY, &long));
        // A text cut inside a character, with a ping between its fragments.
        let text = "héllo wörld";
        bytes.extend(frame(TEXT, &text.as_bytes()[..2]));
        bytes.extend(frame(FIN | PING, b"are you there"));
        bytes.extend(frame(CONTINUE, &text.as_bytes()[2..7]));
        bytes.extend(frame(FIN | CONTINUE, &text.as_bytes()[7..]));
        bytes.extend(frame(FIN | PONG, b""));
        bytes.extend(frame(FIN | BINARY, b""));
        let mut close = 4000u16.to_be_bytes().to_vec();
        close.extend_from_slice("fin ✓".as_bytes());
        bytes.extend(frame(FIN | CLOSE, &close));
        // Nothing after the close is read.
        bytes.extend(frame(FIN | TEXT, b"too late"));

        let read: Vec<Message> = read_all(bytes)
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect();
        assert_eq!(
            read,
            vec![
                Message::Text("short".into()),
                Message::Binary(long.into()),
                Message::Ping(b"are you there".to_vec().into()),
                Message::Text(text.into()),
                Message::Pong(Vec::new().into()),
                Message::Binary(Vec::new().into()),
                Message::Close(Some(super::CloseFrame {
                    code: CloseCode::from(4000),
                    reason: "fin ✓".into(),
                })),
            ]
        );
    }

    #[tokio::test]
    async fn a_client_that_goes_between_frames_ends_the_stream_and_inside_one_is_an_error() {
        let mut bytes = frame(FIN | TEXT, b"one");
        assert_eq!(read_all(bytes.clone()).await.len(), 1);

        bytes.extend_from_slice(&frame(FIN | BINARY, &[1; 1000])[..600]);
        let error = error_of(bytes.clone()).await;
        assert!(matches!(error, ReadError::Protocol(_)), "{error}");
        assert!(error.to_string().contains("inside a frame"), "{error}");

        let error = error_of(frame(BINARY, b"half")).await;
        assert!(error.to_string().contains("fragmented message"), "{error}");
    }

    #[tokio::test]
    async fn frames_that_break_the_protocol_are_refused_with_1002() {
        let broken: Vec<(Vec<u8>, &str)> = vec![
            (unmasked(FIN | TEXT, b"hi"), "must be masked"),
            (frame(FIN | 0x40 | TEXT, b"hi"), "reserved bit"),
            (frame(FIN | 0x3, b"hi"), "opcode"),
            (frame(FIN | 0xB, b""), "opcode"),
            (frame(PING, b"hi"), "cannot be fragmented"),
            (frame(FIN | PING, &[0; 126]), "at most 125"),
            (frame(FIN | CONTINUE, b"hi"), "no message to continue"),
            (
                [frame(TEXT, b"a"), frame(FIN | TEXT, b"b")].concat(),
                "before the last one's final frame",
            ),
            (frame(FIN | CLOSE, &[3]), "a code of two bytes"),
            (
                [
                    &[FIN | BINARY, 0x80 | 127][..],
                    &u64::MAX.to_be_bytes(),
                    &MASK,
                ]
                .concat(),
                "top bit",
            ),
            (frame(FIN | CLOSE, &1005u16.to_be_bytes()), "may not send"),
            (frame(FIN | CLOSE, &999u16.to_be_bytes()), "may not send"),
        ];
        for (bytes, expected) in broken {
            let error = error_of(bytes).await;
            assert!(error.to_string().contains(expected), "{expected}: {error}");
            assert_eq!(error.close_code(), close_code::PROTOCOL, "{error}");
        }
    }

    #[tokio::test]
    async fn text_that_is_not_utf8_is_refused_with_1007() {
        let mut bad_reason = 1000u16.to_be_bytes().to_vec();
        bad_reason.push(0xff);
        for bytes in [
            frame(FIN | TEXT, &[b'a', 0xc3]),
            [frame(TEXT, b"ok"), frame(FIN | CONTINUE, &[0xff])].concat(),
            frame(FIN | CLOSE, &bad_reason),
        ] {
            let error = error_of(bytes).await;
            assert!(matches!(error, ReadError::NotUtf8), "{error}");
            assert_eq!(error.close_code(), close_code::INVALID);
        }
    }

    #[tokio::test]
    async fn a_message_over_the_limit_is_refused_with_1009_before_its_payload_comes() {
        // Only the header: the reader refuses the frame without waiting for the rest.
        let whole = frame(FIN | BINARY, &vec![0; 100_001]);
        let error = error_of(whole[..14].to_vec()).await;
        assert!(
            matches!(
                error,
                ReadError::TooLong {
                    size: 100_001,
                    max: 100_000
                }
            ),
            "{error}"
        );
        assert_eq!(error.close_code(), close_code::SIZE);

        // Fragments under the limit each, over it together.
        let bytes = [
            frame(BINARY, &vec![0; 60_000]),
            frame(FIN | CONTINUE, &vec![0; 40_001]),
        ]
        .concat();
        let error = error_of(bytes).await;
        assert!(
            matches!(error, ReadError::TooLong { size: 100_001, .. }),
            "{error}"
        );
    }

    #[tokio::test]
    async fn the_edges_of_what_a_client_may_send_are_taken() {
        let mut code_alone = frame(FIN | CLOSE, &1001u16.to_be_bytes());
        code_alone.extend(frame(FIN | TEXT, b"after the close"));
        for (bytes, expected) in [
            (
                frame(FIN | PING, &[9; 125]),
                Message::Ping(vec![9; 125].into()),
            ),
            (frame(FIN | CLOSE, b""), Message::Close(None)),
            (
                code_alone,
                Message::Close(Some(super::CloseFrame {
                    code: CloseCode::Away,
                    reason: "".into(),
                })),
            ),
        ] {
            // A buffer smaller than the longest header is raised to hold one.
            let mut reader = FrameReader::new(&bytes[..], 1, 100_000);
            assert_eq!(reader.next().await.unwrap().unwrap(), expected);
            if expected.is_close() {
                assert!(
                    reader.next().await.is_none(),
                    "nothing is read after a close"
                );
            }
        }
    }

    #[tokio::test]
    async fn a_read_given_up_in_the_middle_of_a_frame_loses_nothing() {
        let (mut client, server) = tokio::io::duplex(1 << 16);
        let mut reader = FrameReader::new(server, 2048, 100_000);
        for payload in [vec![3; 100], vec![4; 5000]] {
            let bytes = frame(FIN | BINARY, &payload);
            let (first, rest) = bytes.split_at(bytes.len() / 2);
            client.write_all(first).await.unwrap();
            let waited = tokio::time::timeout(Duration::from_millis(20), reader.next()).await;
            assert!(waited.is_err(), "half a frame is not a message");
            client.write_all(rest).await.unwrap();
            assert_eq!(
                reader.next().await.unwrap().unwrap(),
                Message::Binary(payload.into())
            );
        }
    }

    #[tokio::test]
    async fn fragments_keep_no_more_room_than_their_data() {
        let (mut client, server) = tokio::io::duplex(1 << 16);
        let mut reader = FrameReader::new(server, 2048, 100_000);
        client
            .write_all(&[frame(BINARY, &[1; 3000]), frame(CONTINUE, &[2; 100])].concat())
            .await
            .unwrap();
        assert!(futures::poll!(reader.next()).is_pending());
        let (_, data) = reader.partial.as_ref().expect("a message is open");
        assert_eq!((data.len(), data.capacity()), (3100, 3100));
        client
            .write_all(&frame(FIN | CONTINUE, &[3; 7]))
            .await
            .unwrap();
        let Message::Binary(message) = reader.next().await.unwrap().unwrap() else {
            panic!("a binary message");
        };
        assert_eq!(message.len(), 3107);
        assert!(reader.partial.is_none());
    }

    #[tokio::test]
    async fn a_quiet_connection_holds_no_buffer_even_after_a_long_frame() {
        let (mut client, server) = tokio::io::duplex(1 << 20);
        let mut reader = FrameReader::new(server, 2048, 100_000);
        for payload in [vec![5; 48_000], vec![6; 300]] {
            client
                .write_all(&frame(FIN | BINARY, &payload))
                .await
                .unwrap();
            let read = reader.next().await.unwrap().unwrap();
            assert_eq!(read, Message::Binary(payload.into()));
            assert!(futures::poll!(reader.next()).is_pending());
            assert_eq!(reader.buffer.capacity(), 0, "nothing kept while quiet");
            assert!(reader.long.is_none());
        }
        // A long frame that stalls keeps its own allocation only; the frame behind it, come
        // in the same write as the long one's end, is read after it.
        let long = frame(FIN | BINARY, &[7; 30_000]);
        client.write_all(&long[..20]).await.unwrap();
        assert!(futures::poll!(reader.next()).is_pending());
        assert_eq!(reader.buffer.capacity(), 0, "nothing but the payload kept");
        assert!(reader.long.is_some());
        client
            .write_all(&[&long[20..], &frame(FIN | TEXT, b"behind")[..]].concat())
            .await
            .unwrap();
        assert_eq!(
            reader.next().await.unwrap().unwrap(),
            Message::Binary(vec![7; 30_000].into())
        );
        assert_eq!(
            reader.next().await.unwrap().unwrap(),
            Message::Text("behind".into())
        );

        // Two frames in one read: the second waits in the buffer, then it too is let go of.
        let mut two = frame(FIN | TEXT, b"first");
        two.extend(frame(FIN | TEXT, b"second"));
        client.write_all(&two).await.unwrap();
        assert_eq!(
            reader.next().await.unwrap().unwrap(),
            Message::Text("first".into())
        );
        assert!(reader.buffer.capacity() > 0);
        assert_eq!(
            reader.next().await.unwrap().unwrap(),
            Message::Text("second".into())
        );
        assert!(futures::poll!(reader.next()).is_pending());
        assert_eq!(reader.buffer.capacity(), 0);
    }

    #[test]
    fn unmasking_matches_the_rfcs_byte_by_byte_rule_at_every_length() {
        let mask = [1, 2, 4, 8];
        for length in 0..40 {
            let plain: Vec<u8> = (0..length).map(|i| (i * 7) as u8).collect();
            let mut masked: Vec<u8> = plain
                .iter()
                .enumerate()
                .map(|(i, byte)| byte ^ mask[i % 4])
                .collect();
            unmask(&mut masked, mask);
            assert_eq!(masked, plain, "length {length}");
        }
    }
}
