//! One client connection as the rest of the gateway sees it: a bounded outbound queue, a
//! way to close it with a reason, and the state requests change (background, status
//! subscriptions).
//!
//! Frames reach the socket only through [`Connection::send`], which never waits: a client
//! that lets [`GatewayConfig::write_queue`](jetim_common::config::GatewayConfig) frames pile
//! up is closed with a reason instead of growing the server's memory or losing frames
//! silently.
//!
//! The sender's own push of a message must follow the 1003 reply that tells the sender the
//! message was sent (the JS SDK matches the push to the send only after the reply). While a
//! send is in flight its clientMsgID is *held*: a push of that message to this connection
//! waits, and is queued [`OWN_PUSH_AFTER_REPLY`] after the reply ([`OwnPushes`]).

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::{AbortHandle, AbortRegistration, Abortable};
use futures::{Sink, SinkExt as _};
use jetim_common::auth::Platform;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::envelope::{self, Reply};
use crate::handshake::{ConnectArgs, Envelope};
use crate::lock;
use crate::socket::{CloseFrame, Message, Shrink, close_code};

/// How long the last frame and the close frame may take to write when closing.
const CLOSE_WRITE_TIMEOUT: Duration = Duration::from_secs(2);

/// How long a writer waits for the next frame before it lets go of a buffer larger than an
/// idle connection should keep ([`Shrink`]).
const SHRINK_AFTER: Duration = Duration::from_secs(1);

/// How long after the reply to a send the sender's own push of that message still waits.
/// The JS SDK knows its own message in a push by the operationID it records while it
/// handles the reply, which it does asynchronously: a push read with the reply, or just
/// after it, passes for someone else's message (the real-client suite saw a user's own
/// message counted as unread, in about one run of four). Since pushes no longer wait for
/// the read model, a sender's push often comes as soon as its reply, so it is written
/// apart. Others' pushes are not held back; a conversation whose next message overtakes
/// the sender's own push is put right by the SDKs' gap checks.
pub const OWN_PUSH_AFTER_REPLY: Duration = Duration::from_millis(20);

/// Why and how a connection is being closed.
struct Closing {
    code: u16,
    reason: String,
    /// A frame written just before the close frame (the 2002 of a kick, the 2003 reply).
    last_frame: Option<Message>,
}

/// A live connection.
pub struct Connection {
    /// Its number on this gateway.
    pub id: u64,
    /// The user.
    pub user_id: String,
    /// The platform.
    pub platform: Platform,
    /// The fingerprint of its token.
    pub token: String,
    envelope: Envelope,
    gzip: bool,
    frames: Arc<Queue>,
    closing: Mutex<Option<Closing>>,
    /// Set by the first close, and read for every frame queued.
    is_closing: AtomicBool,
    /// Stop the reader's frames and the writer's loop when the connection closes. Each is
    /// a flag and a waker, which its task checks with a few atomic operations every time
    /// it wakes. The cancellation token this replaced took two locks each time: 1.8% of
    /// jetim's samples in a chat load at 10,000 messages a second, against 0.8% for these.
    close_reader: AbortHandle,
    close_writer: AbortHandle,
    held: Mutex<HashMap<String, Vec<Message>>>,
    background: AtomicBool,
    /// Users whose online status this connection subscribed to (2005).
    pub watching: Mutex<BTreeSet<String>>,
}

/// A connection's frames waiting to be written: bounded, with one reader, holding no memory
/// until its first frame and a few slots at most once emptied. tokio's bounded channel
/// allocates a block of 32 slots when it is made, 1.5 KB that each idle connection held
/// (heaptrack, `jetim bench connect`).
struct Queue {
    frames: Mutex<VecDeque<Message>>,
    limit: usize,
    /// Wakes the reader; holds a wake-up given while it was not waiting.
    queued: Notify,
}

/// A queue that keeps a burst's capacity after it is emptied gives it back beyond this.
const QUEUE_KEPT_CAPACITY: usize = 8;

impl Queue {
    /// Queues `frame`; gives it back when the queue holds its limit.
    fn push(&self, frame: Message) -> Result<(), Message> {
        {
            let mut frames = lock(&self.frames);
            if frames.len() >= self.limit {
                return Err(frame);
            }
            frames.push_back(frame);
        }
        self.queued.notify_one();
        Ok(())
    }

    /// The next frame, when there is one.
    async fn recv(&self) -> Message {
        loop {
            if let Some(frame) = self.pop() {
                return frame;
            }
            self.queued.notified().await;
        }
    }

    fn pop(&self) -> Option<Message> {
        let mut frames = lock(&self.frames);
        let frame = frames.pop_front();
        if frames.is_empty() && frames.capacity() > QUEUE_KEPT_CAPACITY {
            *frames = VecDeque::new();
        }
        frame
    }
}

/// The reading end of a connection's queue, for its writer, with the writer's wait for
/// the close.
pub struct Outbox {
    frames: Arc<Queue>,
    closed: AbortRegistration,
}

impl Outbox {
    /// The next frame, if one is queued.
    #[cfg(test)]
    fn try_recv(&mut self) -> Option<Message> {
        self.frames.pop()
    }
}

/// The sender's own pushes waiting out [`OWN_PUSH_AFTER_REPLY`], for all of a gateway's
/// connections: one timer for the gateway, not one task a send. Every entry waits the same
/// time, so they fall due in the order they came.
pub struct OwnPushes {
    after: Duration,
    due: Mutex<VecDeque<(Instant, Arc<Connection>, String)>>,
    /// Wakes [`OwnPushes::run`] when an entry comes to an empty queue.
    queued: Notify,
}

impl OwnPushes {
    /// Releases each held push `after` its reply was queued.
    pub fn new(after: Duration) -> Self {
        Self {
            after,
            due: Mutex::new(VecDeque::new()),
            queued: Notify::new(),
        }
    }

    /// [`Connection::release`]s `client_msg_id` on `connection` once the wait is over: the
    /// sender's own push waits until then, whether it came before the reply or comes
    /// meanwhile (see [`OWN_PUSH_AFTER_REPLY`]).
    pub fn release_later(&self, connection: &Arc<Connection>, client_msg_id: String) {
        let was_empty = {
            let mut due = lock(&self.due);
            due.push_back((
                Instant::now() + self.after,
                Arc::clone(connection),
                client_msg_id,
            ));
            due.len() == 1
        };
        if was_empty {
            self.queued.notify_one();
        }
    }

    /// Releases the held pushes as they fall due, until its task is aborted: a gateway
    /// that is shutting down still answers sends until its connections are closed, and
    /// their senders' pushes still follow.
    pub async fn run(&self) {
        loop {
            // A wait that begins later ends later, so only an empty queue needs waking.
            let next = lock(&self.due).front().map(|(at, _, _)| *at);
            match next {
                Some(at) => {
                    tokio::time::sleep_until(at).await;
                    self.release_due();
                }
                None => self.queued.notified().await,
            }
        }
    }

    /// Releases every entry that is due now.
    fn release_due(&self) {
        let now = Instant::now();
        loop {
            let entry = {
                let mut due = lock(&self.due);
                match due.front() {
                    Some((at, _, _)) if *at <= now => due.pop_front(),
                    _ => None,
                }
            };
            let Some((_, connection, client_msg_id)) = entry else {
                return;
            };
            connection.release(&client_msg_id);
        }
    }
}

impl Connection {
    /// A connection for `args` with a queue of `queue` frames; with the queue's reading end
    /// for [`Connection::write`], and the registration that ends the client's frames when
    /// the connection closes, for the reader (`futures::stream::Abortable`).
    pub fn new(id: u64, args: &ConnectArgs, queue: usize) -> (Self, Outbox, AbortRegistration) {
        let frames = Arc::new(Queue {
            frames: Mutex::new(VecDeque::new()),
            limit: queue.max(1),
            queued: Notify::new(),
        });
        let (close_reader, reader_closed) = AbortHandle::new_pair();
        let (close_writer, writer_closed) = AbortHandle::new_pair();
        let outbox = Outbox {
            frames: Arc::clone(&frames),
            closed: writer_closed,
        };
        let envelope = match args.envelope {
            Envelope::Json => "json",
            Envelope::Gob => "gob",
        };
        metrics::counter!(
            "jetim_gateway_connections_opened_total",
            "envelope" => envelope,
            "gzip" => if args.gzip { "true" } else { "false" },
        )
        .increment(1);
        let connection = Self {
            id,
            user_id: args.user_id.clone(),
            platform: args.platform,
            token: jetim_common::auth::fingerprint(&args.token),
            envelope: args.envelope,
            gzip: args.gzip,
            frames,
            closing: Mutex::new(None),
            is_closing: AtomicBool::new(false),
            close_reader,
            close_writer,
            held: Mutex::new(HashMap::new()),
            // OpenIM ignores the handshake's isBackground; only 2004 sets it.
            background: AtomicBool::new(false),
            watching: Mutex::new(BTreeSet::new()),
        };
        (connection, outbox, reader_closed)
    }

    /// A reply or push as this connection's envelope writes it.
    pub fn encode(&self, reply: &Reply) -> Message {
        Message::Binary(envelope::encode(reply, self.envelope, self.gzip).into())
    }

    /// How this connection's frames are written: connections with the same encoding take
    /// the same bytes for the same reply.
    pub fn encoding(&self) -> (Envelope, bool) {
        (self.envelope, self.gzip)
    }

    /// Reads a binary frame in this connection's envelope.
    pub fn decode(
        &self,
        frame: &[u8],
        max_bytes: usize,
    ) -> Result<envelope::Request, envelope::BadFrame> {
        envelope::decode(frame, self.envelope, self.gzip, max_bytes)
    }

    /// Queues a frame. `false` when the connection is closing, or the client is too far
    /// behind, in which case it is closed now.
    pub fn send(&self, frame: Message) -> bool {
        // A closing connection's writer writes only the closing frames.
        if self.is_closed() {
            return false;
        }
        match self.frames.push(frame) {
            Ok(()) => true,
            Err(_) => {
                metrics::counter!("jetim_gateway_slow_closes_total").increment(1);
                self.close(
                    close_code::POLICY,
                    "the client does not read fast enough",
                    None,
                );
                false
            }
        }
    }

    /// Closes the connection: `last_frame` (if any), then a close frame with `code` and
    /// `reason`. The first close wins.
    pub fn close(&self, code: u16, reason: &str, last_frame: Option<Message>) {
        let mut closing = lock(&self.closing);
        // Under the lock, so one close wins; the writer takes `closing` when it writes it.
        if !self.is_closing.load(Ordering::Relaxed) {
            *closing = Some(Closing {
                code,
                reason: close_reason(reason),
                last_frame,
            });
            self.is_closing.store(true, Ordering::Release);
            self.close_reader.abort();
            self.close_writer.abort();
        }
    }

    /// Whether the connection is closing.
    pub fn is_closed(&self) -> bool {
        self.is_closing.load(Ordering::Acquire)
    }

    /// Holds pushes of `client_msg_id` from this user until [`Connection::release`].
    pub fn hold(&self, client_msg_id: &str) {
        lock(&self.held)
            .entry(client_msg_id.to_owned())
            .or_default();
    }

    /// Queues the pushes held for `client_msg_id` (call after queueing the reply).
    pub fn release(&self, client_msg_id: &str) {
        let mut held = lock(&self.held);
        for frame in held.remove(client_msg_id).unwrap_or_default() {
            if !self.send(frame) {
                break;
            }
        }
    }

    /// Queues a push of a message from `sender` with `client_msg_id`, after the reply to
    /// its send if that send is this connection's and still in flight. iOS connections in
    /// the background get no pushes (offline push serves them).
    pub fn push(&self, frame: Message, sender: &str, client_msg_id: &str) {
        if self.platform == Platform::IOS && self.background.load(Ordering::Relaxed) {
            return;
        }
        if sender == self.user_id && !client_msg_id.is_empty() {
            let mut held = lock(&self.held);
            if let Some(waiting) = held.get_mut(client_msg_id) {
                waiting.push(frame);
                return;
            }
        }
        self.send(frame);
    }

    /// Sets the background flag (2004).
    pub fn set_background(&self, background: bool) {
        self.background.store(background, Ordering::Relaxed);
    }

    /// Writes queued frames to `sink` until the connection closes; sends WebSocket pings
    /// every `ping_every`, if given. A sink that kept a large buffer for a burst lets it go
    /// once no frame has come for a second.
    ///
    /// Every write races the close. A client that stops reading but keeps its connection
    /// open (its receive window shut) would otherwise hold a write, and the writer with it,
    /// for as long as it stayed: the close (a full queue, the read timeout) would never be
    /// written, and the socket never let go. On a close the writer goes on to its closing
    /// frames, which have 2 s.
    pub async fn write<S: Sink<Message> + Shrink + Unpin>(
        &self,
        mut sink: S,
        outbox: Outbox,
        ping_every: Option<Duration>,
    ) {
        let Outbox { frames, closed } = outbox;
        let frames = &*frames;
        let mut ping = ping_every.map(|every| {
            let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticker
        });
        // Armed when a burst leaves the sink's buffer large, and boxed, so that an idle
        // connection's task holds no timer. However busy the connection, it is not armed
        // again for every write: when it fires, it shrinks the buffer if nothing was
        // written for SHRINK_AFTER, or is moved to SHRINK_AFTER after the last write.
        let mut shrink: Option<Pin<Box<tokio::time::Sleep>>> = None;
        let mut last_write = Instant::now();
        let writing = async {
            loop {
                let written = tokio::select! {
                    biased;
                    frame = frames.recv() => {
                        last_write = Instant::now();
                        write_burst(&mut sink, frames, frame).await
                    }
                    () = next_shrink(&mut shrink) => {
                        let due = last_write + SHRINK_AFTER;
                        match shrink.as_mut() {
                            Some(timer) if due > Instant::now() => timer.as_mut().reset(due),
                            _ => {
                                sink.shrink();
                                shrink = None;
                            }
                        }
                        Ok(())
                    }
                    () = next_ping(&mut ping) => sink.send(Message::Ping(Vec::new().into())).await,
                };
                if written.is_err() {
                    self.close(close_code::ERROR, "write failed", None);
                } else if shrink.is_none() && sink.keeps_more_than_needed() {
                    shrink = Some(Box::pin(tokio::time::sleep_until(
                        last_write + SHRINK_AFTER,
                    )));
                }
            }
        };
        // Every wait and every write of the loop ends with the close, wherever it is.
        let _aborted = Abortable::new(writing, closed).await;
        // Boxed, so that the closing's state is not part of the task while it waits for
        // frames.
        Box::pin(self.write_closing(&mut sink)).await;
    }

    /// Writes the closing frames, the close's last frame, if any, and the close frame, then
    /// closes `sink`, for at most [`CLOSE_WRITE_TIMEOUT`].
    async fn write_closing<S: Sink<Message> + Unpin>(&self, sink: &mut S) {
        let closing = lock(&self.closing).take();
        let _ = tokio::time::timeout(CLOSE_WRITE_TIMEOUT, async {
            match closing {
                Some(Closing {
                    code,
                    reason,
                    last_frame,
                }) => {
                    if let Some(frame) = last_frame {
                        sink.send(frame).await?;
                    }
                    sink.send(Message::Close(Some(CloseFrame {
                        code: code.into(),
                        reason: reason.into(),
                    })))
                    .await?;
                }
                None => sink.send(Message::Close(None)).await?,
            }
            // Nothing more will be written: the socket's write side ends here.
            sink.close().await
        })
        .await;
    }
}

/// A writer takes at most this many queued frames into one socket write.
const BURST_FRAMES: usize = 16;

/// Writes `first` and up to [`BURST_FRAMES`] in all of what is already queued behind it,
/// then flushes once: frames that piled up (a reply and the push it released, pushes that
/// came while the socket was busy) cost one socket write, not one each. The cap keeps the
/// burst, and the writer's buffer for it, short.
async fn write_burst<S: Sink<Message> + Unpin>(
    sink: &mut S,
    frames: &Queue,
    first: Message,
) -> Result<(), S::Error> {
    sink.feed(first).await?;
    for _ in 1..BURST_FRAMES {
        let Some(next) = frames.pop() else {
            break;
        };
        sink.feed(next).await?;
    }
    sink.flush().await
}

/// When `timer` fires; never, without one.
async fn next_shrink(timer: &mut Option<Pin<Box<tokio::time::Sleep>>>) {
    match timer {
        Some(timer) => timer.as_mut().await,
        None => std::future::pending().await,
    }
}

/// The next tick of `ping`; never, without one.
async fn next_ping(ping: &mut Option<tokio::time::Interval>) {
    match ping {
        Some(ticker) => {
            ticker.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// A close frame's reason holds at most 123 bytes; longer reasons are cut at a character
/// boundary.
fn close_reason(reason: &str) -> String {
    const MAX: usize = 123;
    if reason.len() <= MAX {
        return reason.to_owned();
    }
    let mut end = MAX;
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    reason[..end].to_owned()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use crate::socket::{Message, close_code};
    use jetim_common::auth::Platform;

    use super::{
        BURST_FRAMES, Connection, Outbox, OwnPushes, SHRINK_AFTER, close_reason, write_burst,
    };
    use crate::handshake::{ConnectArgs, Envelope};

    fn connection(platform: Platform, queue: usize) -> (Connection, Outbox) {
        let args = ConnectArgs {
            user_id: "alice".into(),
            token: "t".into(),
            platform,
            operation_id: "o".into(),
            envelope: Envelope::Json,
            gzip: false,
            in_band_result: true,
            background: false,
        };
        let (connection, outbox, _reader_closed) = Connection::new(1, &args, queue);
        (connection, outbox)
    }

    fn text(frame: Option<Message>) -> String {
        match frame {
            Some(Message::Text(text)) => text.to_string(),
            other => format!("{other:?}"),
        }
    }

    #[test]
    fn the_senders_own_push_waits_for_the_reply() {
        let (connection, mut outbox) = connection(Platform::WEB, 8);
        connection.hold("c1");
        connection.push(Message::Text("push c1".into()), "alice", "c1");
        // Pushes of other messages, or of others' messages with that ID, do not wait.
        connection.push(Message::Text("push c2".into()), "alice", "c2");
        connection.push(Message::Text("bob's c1".into()), "bob", "c1");
        connection.send(Message::Text("reply c1".into()));
        connection.release("c1");
        let order: Vec<String> = (0..4).map(|_| text(outbox.try_recv())).collect();
        assert_eq!(order, ["push c2", "bob's c1", "reply c1", "push c1"]);
        // Released: later pushes of c1 go straight out.
        connection.push(Message::Text("again".into()), "alice", "c1");
        assert_eq!(text(outbox.try_recv()), "again");
    }

    #[tokio::test(start_paused = true)]
    async fn the_senders_own_push_goes_a_while_after_the_reply() {
        let (connection, mut outbox) = connection(Platform::WEB, 8);
        let connection = std::sync::Arc::new(connection);
        let after = std::time::Duration::from_millis(20);
        let own_pushes = std::sync::Arc::new(OwnPushes::new(after));
        let releasing = tokio::spawn({
            let own_pushes = std::sync::Arc::clone(&own_pushes);
            async move { own_pushes.run().await }
        });
        connection.hold("c1");
        connection.push(Message::Text("before".into()), "alice", "c1");
        connection.send(Message::Text("reply c1".into()));
        own_pushes.release_later(&connection, "c1".into());
        connection.push(Message::Text("meanwhile".into()), "alice", "c1");
        connection.push(Message::Text("bob's".into()), "bob", "c9");
        tokio::time::sleep(after / 2).await;
        let order: Vec<String> = (0..3).map(|_| text(outbox.try_recv())).collect();
        assert_eq!(order, ["reply c1", "bob's", "None"]);
        tokio::time::sleep(after).await;
        let order: Vec<String> = (0..3).map(|_| text(outbox.try_recv())).collect();
        assert_eq!(order, ["before", "meanwhile", "None"]);
        // Another send later waits its own full time, not the first one's.
        connection.hold("c2");
        connection.push(Message::Text("c2".into()), "alice", "c2");
        connection.send(Message::Text("reply c2".into()));
        own_pushes.release_later(&connection, "c2".into());
        tokio::time::sleep(after / 2).await;
        let order: Vec<String> = (0..2).map(|_| text(outbox.try_recv())).collect();
        assert_eq!(order, ["reply c2", "None"]);
        tokio::time::sleep(after).await;
        assert_eq!(text(outbox.try_recv()), "c2");
        releasing.abort();
    }

    #[test]
    fn a_full_queue_closes_and_background_ios_gets_no_pushes() {
        let (connection, mut outbox) = connection(Platform::WEB, 2);
        assert!(connection.send(Message::Text("1".into())));
        assert!(connection.send(Message::Text("2".into())));
        assert!(!connection.is_closed());
        assert!(!connection.send(Message::Text("3".into())));
        assert!(
            connection.is_closed(),
            "a client that falls behind is closed"
        );
        assert_eq!(text(outbox.try_recv()), "1");
        assert_eq!(text(outbox.try_recv()), "2");
        // Closing, it takes no more frames: its writer writes only the closing ones.
        assert!(!connection.send(Message::Text("4".into())));
        assert!(outbox.try_recv().is_none());

        let (ios, mut outbox) = connection_on_ios();
        ios.set_background(true);
        ios.push(Message::Text("skipped".into()), "bob", "c");
        assert!(outbox.try_recv().is_none());
        ios.set_background(false);
        ios.push(Message::Text("delivered".into()), "bob", "c");
        assert_eq!(text(outbox.try_recv()), "delivered");
    }

    /// What a [`Recording`] sink was given.
    #[derive(Default)]
    struct Recorded {
        frames: Vec<String>,
        /// How many frames it held at each flush.
        flushed_at: Vec<usize>,
        /// Whether it keeps a large buffer: as if each frame grew one, until shrunk.
        large: bool,
        shrunk: usize,
        /// Whether its socket takes no more bytes: a client that stopped reading and keeps
        /// its connection open. Its flushes never end.
        stuck: bool,
    }

    /// A sink that records what it is given; its clones share the record.
    #[derive(Clone, Default)]
    struct Recording(Arc<std::sync::Mutex<Recorded>>);

    impl Recording {
        fn record(&self) -> std::sync::MutexGuard<'_, Recorded> {
            self.0.lock().unwrap()
        }
    }

    impl crate::socket::Shrink for Recording {
        fn keeps_more_than_needed(&self) -> bool {
            self.record().large
        }

        fn shrink(&mut self) {
            let mut record = self.record();
            record.large = false;
            record.shrunk += 1;
        }
    }

    impl futures::Sink<Message> for Recording {
        type Error = std::convert::Infallible;

        fn poll_ready(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Result<(), Self::Error>> {
            std::task::Poll::Ready(Ok(()))
        }

        fn start_send(self: std::pin::Pin<&mut Self>, frame: Message) -> Result<(), Self::Error> {
            let mut record = self.record();
            record.frames.push(text(Some(frame)));
            record.large = true;
            Ok(())
        }

        fn poll_flush(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Result<(), Self::Error>> {
            let mut record = self.record();
            if record.stuck {
                return std::task::Poll::Pending;
            }
            let held = record.frames.len();
            record.flushed_at.push(held);
            std::task::Poll::Ready(Ok(()))
        }

        fn poll_close(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Result<(), Self::Error>> {
            std::task::Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn queued_frames_go_out_in_bursts_of_at_most_sixteen_with_one_flush_each() {
        let (connection, mut outbox) = connection(Platform::WEB, 64);
        let mut sink = Recording::default();
        assert!(connection.send(Message::Text("alone".into())));
        let first = outbox.frames.recv().await;
        write_burst(&mut sink, &outbox.frames, first).await.unwrap();
        assert_eq!(
            sink.record().flushed_at,
            [1],
            "a lone frame is flushed at once"
        );

        for frame in 0..20 {
            assert!(connection.send(Message::Text(frame.to_string().into())));
        }
        for _ in 0..2 {
            let first = outbox.frames.recv().await;
            write_burst(&mut sink, &outbox.frames, first).await.unwrap();
        }
        assert_eq!(sink.record().flushed_at, [1, 1 + BURST_FRAMES, 21]);
        let expected: Vec<String> = std::iter::once("alone".to_owned())
            .chain((0..20).map(|frame| frame.to_string()))
            .collect();
        assert_eq!(sink.record().frames, expected, "every frame once, in order");
        assert!(outbox.try_recv().is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn a_writer_lets_go_of_a_large_buffer_once_idle_and_not_while_busy() {
        let (connection, outbox) = connection(Platform::WEB, 64);
        let connection = Arc::new(connection);
        let sink = Recording::default();
        let writer = {
            let (connection, sink) = (Arc::clone(&connection), sink.clone());
            tokio::spawn(async move { connection.write(sink, outbox, None).await })
        };
        let shrunk = || sink.record().shrunk;
        // A frame every half of SHRINK_AFTER: busy, so the buffer stays.
        for n in 0..6 {
            assert!(connection.send(Message::Text(n.to_string().into())));
            tokio::time::sleep(SHRINK_AFTER / 2).await;
            assert_eq!(shrunk(), 0, "busy after frame {n}");
        }
        tokio::time::sleep(SHRINK_AFTER).await;
        assert_eq!(shrunk(), 1, "idle for SHRINK_AFTER");
        // Nothing more to let go of: no more shrinking, however long it stays idle.
        tokio::time::sleep(SHRINK_AFTER * 10).await;
        assert_eq!(shrunk(), 1);
        assert_eq!(sink.record().frames.len(), 6);
        connection.close(close_code::NORMAL, "", None);
        writer.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_writer_stuck_on_a_client_that_stopped_reading_ends_when_closed() {
        let (connection, outbox) = connection(Platform::WEB, 4);
        let connection = Arc::new(connection);
        let sink = Recording::default();
        sink.record().stuck = true;
        let writer = {
            let (connection, sink) = (Arc::clone(&connection), sink.clone());
            tokio::spawn(async move { connection.write(sink, outbox, None).await })
        };
        assert!(connection.send(Message::Text("never taken".into())));
        tokio::time::sleep(std::time::Duration::from_secs(60)).await;
        assert!(!writer.is_finished(), "the write waits on the client");
        // As the queue filling up, or the read timeout, would close it.
        connection.close(
            close_code::POLICY,
            "the client does not read fast enough",
            None,
        );
        let started = tokio::time::Instant::now();
        tokio::time::timeout(std::time::Duration::from_secs(600), writer)
            .await
            .expect("the writer ends")
            .unwrap();
        assert_eq!(
            started.elapsed(),
            super::CLOSE_WRITE_TIMEOUT,
            "the close frame is given its time, then the writer ends"
        );
    }

    fn connection_on_ios() -> (Connection, Outbox) {
        connection(Platform::IOS, 8)
    }

    /// Many producers, one writer waiting on the queue: every frame arrives, each producer's
    /// in its order, and none is left waiting for a wake-up that never comes.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_writer_gets_every_frame_queued_from_other_tasks() {
        const PRODUCERS: usize = 4;
        const FRAMES: usize = 2000;
        let (connection, mut outbox) = connection(Platform::WEB, PRODUCERS * FRAMES);
        let connection = std::sync::Arc::new(connection);
        for producer in 0..PRODUCERS {
            let connection = std::sync::Arc::clone(&connection);
            tokio::spawn(async move {
                for frame in 0..FRAMES {
                    assert!(connection.send(Message::Text(format!("{producer} {frame}").into())));
                    if frame % 64 == 0 {
                        tokio::task::yield_now().await;
                    }
                }
            });
        }
        let mut next = [0; PRODUCERS];
        for _ in 0..PRODUCERS * FRAMES {
            let frame =
                tokio::time::timeout(std::time::Duration::from_secs(10), outbox.frames.recv())
                    .await
                    .expect("a queued frame reaches the writer");
            let text = text(Some(frame));
            let (producer, frame) = text.split_once(' ').unwrap();
            let producer: usize = producer.parse().unwrap();
            assert_eq!(
                frame.parse::<usize>().unwrap(),
                next[producer],
                "{producer}'s order"
            );
            next[producer] += 1;
        }
        assert_eq!(next, [FRAMES; PRODUCERS]);
        assert!(outbox.try_recv().is_none());
        // Emptied after a burst, the queue holds no more than a few slots.
        assert!(outbox.frames.frames.lock().unwrap().capacity() <= super::QUEUE_KEPT_CAPACITY);
        assert!(!connection.is_closed());
        // A lone frame, queued while the writer waits on an empty queue, wakes it.
        let waiting = tokio::spawn(async move { outbox.frames.recv().await });
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        assert!(connection.send(Message::Text("lone".into())));
        let frame = tokio::time::timeout(std::time::Duration::from_secs(10), waiting)
            .await
            .expect("the waiting writer is woken")
            .unwrap();
        assert_eq!(text(Some(frame)), "lone");
    }

    #[test]
    fn the_first_close_wins_even_after_the_writer_took_it() {
        let (connection, _outbox) = connection(Platform::WEB, 8);
        assert!(!connection.is_closed());
        connection.close(4000, "first", None);
        connection.close(4001, "second", None);
        assert!(connection.is_closed());
        assert!(
            !connection.send(Message::Text("late".into())),
            "no frames once closing"
        );
        let taken = crate::lock(&connection.closing).take();
        assert_eq!(
            taken.map(|closing| (closing.code, closing.reason)),
            Some((4000, "first".to_owned()))
        );
        // The writer has taken the close it writes; a later close must not queue another.
        connection.close(4002, "third", None);
        assert!(crate::lock(&connection.closing).is_none());
    }

    #[test]
    fn close_reasons_fit_a_close_frame() {
        assert_eq!(close_reason("kicked"), "kicked");
        let long = "é".repeat(100);
        let cut = close_reason(&long);
        assert!(cut.len() <= 123 && cut.chars().all(|c| c == 'é'));
    }
}
