//! The push service: every new message, pushed to its recipients' connections.
//!
//! One durable consumer, `push`, reads the timelines (`im.conv.*.msg`) from the moment it
//! was first created: a new deployment does not push its history. For each `msg.sent` it
//! resolves the recipients ([`jetim_messaging::delivery::recipients`]) and publishes the
//! 2001 payload for them, as `push.fanout` says: by default once on the conversation's
//! `im.fanout.<conversationID>` with the recipients named, which every gateway hears and
//! writes to those it holds; or on each one's `im.deliver.<userID>`, where the gateways
//! holding that user's connections pick it up (each through its own subscription to every
//! user's pushes, or to that user's, as `gateway.deliveries` says). Delivery is best
//! effort: a client that missed a push catches up by seq sync. Recipients with no online connection go to the offline
//! push ([`offline`]) when the message and their receive settings allow it. Acks go under
//! the "all" policy: one for many pushed messages.
//!
//! A message is pushed as soon as it is read, without waiting for the read model to show
//! it. A client that reacts to a push by reading (a pull to fill a gap, the JS SDK's lookup
//! of a conversation it has not seen) may get there before the projections; those reads
//! wait for them ([`jetim_messaging::sync::CatchUp`]).
//!
//! Messages are handled in stream order, so each conversation's pushes go out in seq order
//! (the Go SDK pulls whenever a pushed seq is not the next one it expects). A message that
//! is older than `push.max_age_secs` when read (the service was down) is skipped.
//!
//! Messages already read when one is pushed go out with it: under `push.fanout:
//! conversation`, consecutive messages of one conversation for the same recipients make one
//! push (one `Fanout`, up to `push.messages_per_push`, 100 by default). A busy group's
//! message (one pushed within the linger before it) also waits that moment
//! (`push.group_linger_ms`, 25 ms by default) for the messages read after it, so a busy group
//! costs each member's connection one frame per linger instead of one per message. A quiet
//! group's message, and every other, is never held back, but goes with a group's that waits.
//!
//! A group message goes to the group's current members, from an in-process member cache
//! ([`members`]) kept fresh by the group events, so fan-out makes no query per message.

pub mod members;
pub mod offline;

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, consumer};
use futures::{FutureExt as _, StreamExt as _};
use jetim_common::config::{PushConfig, PushFanout};
use jetim_common::presence::PresenceStore;
use jetim_common::shutdown::CancellationToken;
use jetim_messaging::delivery::{self, Recipients};
use jetim_schemas::event::Event as _;
use jetim_schemas::events::msg::MsgSent;
use jetim_streams::consume::take_record;
use jetim_streams::headers;
use jetim_streams::subject::{CONVERSATION_STREAM, ConversationKind, every_conversation};

use crate::offline::OfflinePush;

/// The durable consumer's name.
pub const CONSUMER: &str = "push";

/// How long to wait before re-opening the consumer after NATS failed.
const RETRY_DELAY: Duration = Duration::from_secs(1);
/// Under the "all" ack policy, the push acknowledges after this many handled messages, or
/// when no further one is waiting and the oldest unacknowledged was handled at least
/// [`ACK_AFTER`] ago, whichever comes first.
const ACK_EVERY: usize = 100;
/// How long a handled message may wait for its (shared) acknowledgement while more keep
/// coming. Acknowledging whenever none was waiting cost nats-server an ack for every few
/// messages under a steady load.
const ACK_AFTER: Duration = Duration::from_millis(50);
/// How many messages one pull asks for; the client asks again when half of them have come.
/// With async-nats' default of 200 the push fell behind the sends at 16,000 msg/s on a
/// loaded 2-core box: the next pull is sent by a task of its own, which waited its turn
/// behind the gateway's connections, and meanwhile the server had nothing to send (the
/// consumer showed no waiting pull while its backlog grew by thousands a second).
const PULL_BATCH: usize = 1000;
/// How many messages may be delivered and not yet acknowledged: room for a pull and a half
/// in flight and those handled since the last ack, with a good margin.
const MAX_ACK_PENDING: i64 = 10_000;
/// How often the server says the consumer is alive while it has nothing to send.
const HEARTBEAT: Duration = Duration::from_secs(15);

/// What the push service needs.
#[derive(Clone)]
pub struct PushState {
    /// JetStream, to read the timelines.
    pub jetstream: jetstream::Context,
    /// Core NATS, to publish deliveries. With a `local_gateway`, the connection that
    /// gateway hears fan-out pushes on, made with `no_echo`.
    pub nats: async_nats::Client,
    /// The gateway in this process, if there is one: fan-out pushes go to it directly
    /// ([`delivery::LocalFanout`]).
    pub local_gateway: Option<Arc<dyn delivery::LocalFanout>>,
    /// The read models (receive settings for offline push).
    pub db: deadpool_postgres::Pool,
    /// Who is online.
    pub presence: PresenceStore,
    /// Settings.
    pub config: PushConfig,
    /// Group members for fan-out.
    pub members: members::MemberCache,
}

fn consumer_config() -> consumer::pull::Config {
    consumer::pull::Config {
        durable_name: Some(CONSUMER.to_owned()),
        name: Some(CONSUMER.to_owned()),
        description: Some("jetim push: new messages to their recipients' connections".to_owned()),
        filter_subject: every_conversation(ConversationKind::Timeline),
        ack_policy: consumer::AckPolicy::All,
        ack_wait: Duration::from_secs(30),
        max_ack_pending: MAX_ACK_PENDING,
        deliver_policy: consumer::DeliverPolicy::New,
        ..Default::default()
    }
}

/// Runs until `shutdown` is cancelled. Fails only if the consumer cannot be created, or an
/// earlier build's raised, at start; later NATS failures are logged and retried.
pub async fn run(state: PushState, shutdown: CancellationToken) -> anyhow::Result<()> {
    let stream = state
        .jetstream
        .get_stream_no_info(CONVERSATION_STREAM)
        .await?;
    let mut consumer: consumer::PullConsumer = stream
        .get_or_create_consumer(CONSUMER, consumer_config())
        .await?;
    // A consumer an earlier build made may allow fewer messages in flight than about a pull
    // and a half; one with no limit (-1) is left as it is.
    if (0..MAX_ACK_PENDING).contains(&consumer.cached_info().config.max_ack_pending) {
        let made = consumer.cached_info().config.clone();
        let raised = consumer::Config {
            max_ack_pending: MAX_ACK_PENDING,
            ..made
        };
        stream.update_consumer(raised).await?;
        consumer = stream
            .get_consumer(CONSUMER)
            .await
            .map_err(|error| anyhow::anyhow!("push consumer not reopened: {error}"))?;
    }
    let ack_all = consumer.cached_info().config.ack_policy == consumer::AckPolicy::All;
    // An operator may cap the consumer's pulls (`max_batch`); a larger pull would be refused.
    let pull_batch = match usize::try_from(consumer.cached_info().config.max_batch) {
        Ok(cap) if cap > 0 => PULL_BATCH.min(cap),
        _ => PULL_BATCH,
    };
    let offline = OfflinePush::new(&state.config)?;
    // Lingering serves only pushes that share frames.
    let linger =
        if state.config.fanout == PushFanout::Conversation && state.config.messages_per_push > 1 {
            Duration::from_millis(state.config.group_linger_ms)
        } else {
            Duration::ZERO
        };
    tokio::spawn(
        state
            .members
            .clone()
            .follow(state.jetstream.clone(), shutdown.clone()),
    );
    loop {
        let messages = tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            messages = consumer
                .stream()
                .heartbeat(HEARTBEAT)
                .max_messages_per_batch(pull_batch)
                .messages() => messages,
        };
        let mut messages = match messages {
            Ok(messages) => messages,
            Err(error) => {
                tracing::warn!(%error, "push consumer unavailable; retrying");
                tokio::select! {
                    () = shutdown.cancelled() => return Ok(()),
                    () = tokio::time::sleep(RETRY_DELAY) => continue,
                }
            }
        };
        let mut acks = Acks::new(ack_all);
        let mut burst = Burst::new(linger);
        // Set when the consumer's messages ended or failed: what was read is pushed, then
        // the consumer is opened again.
        let mut interrupted = false;
        loop {
            if burst.waiting.is_empty() {
                if interrupted {
                    acks.flush().await;
                    break;
                }
                // Acknowledge what is handled before waiting for more.
                let next = match messages.next().now_or_never() {
                    Some(next) => next,
                    None => {
                        let now = tokio::time::Instant::now();
                        if acks.due().is_some_and(|due| due <= now) {
                            acks.flush().await;
                        }
                        let due = acks.due();
                        tokio::select! {
                            () = shutdown.cancelled() => return Ok(()),
                            next = messages.next() => next,
                            () = tokio::time::sleep_until(due.unwrap_or(now)), if due.is_some() => {
                                acks.flush().await;
                                continue;
                            }
                        }
                    }
                };
                match next {
                    Some(Ok(message)) => burst.take(&state, message).await,
                    Some(Err(error)) => {
                        tracing::warn!(%error, "push consumer interrupted; reopening");
                        acks.flush().await;
                        break;
                    }
                    None => {
                        acks.flush().await;
                        break;
                    }
                }
            }
            // What has been read already goes with it. Once the burst holds a busy group's
            // message, that message (and its group's later ones) waits for what is read
            // within the linger from the burst's start; every other message still goes as
            // soon as it is read.
            let started = tokio::time::Instant::now();
            let mut linger_until = None;
            while !interrupted && burst.waiting.len() < BURST {
                if linger_until.is_none() && burst.lingers {
                    linger_until = Some(started + linger);
                    burst.push_unheld(&state, &offline).await;
                }
                let next = match linger_until {
                    Some(until) => tokio::time::timeout_at(until, messages.next()).await.ok(),
                    None => messages.next().now_or_never(),
                };
                match next {
                    Some(Some(Ok(message))) => {
                        burst.take(&state, message).await;
                        // What is not held goes at once, lingering or not.
                        if linger_until.is_some() {
                            burst.push_unheld(&state, &offline).await;
                        }
                    }
                    Some(Some(Err(error))) => {
                        tracing::warn!(%error, "push consumer interrupted; reopening");
                        interrupted = true;
                    }
                    Some(None) => interrupted = true,
                    None => break,
                }
            }
            for message in burst.push(&state, &offline).await {
                acks.handled(message).await;
            }
        }
    }
}

/// At most this many messages already read are pushed together.
const BURST: usize = 1000;

/// At most this many groups' last pushes are remembered; past it, those older than the
/// linger are forgotten.
const BUSY_GROUPS_KEPT: usize = 10_000;

/// Messages read from the timelines and not yet acknowledged, in stream order.
struct Burst {
    waiting: VecDeque<Waiting>,
    /// `push.group_linger_ms`, or nothing when pushes cannot share frames
    /// (`push.fanout: per_user`, `push.messages_per_push: 1`).
    linger: Duration,
    /// Whether a busy group's message is held, so the burst waits for more.
    lingers: bool,
    /// The conversations with a held message: their later messages are held too, so each
    /// conversation's pushes keep their order.
    held: HashSet<String>,
    /// When each group conversation was last pushed: a group pushed within the linger is
    /// busy, and its next message waits for more. A quiet group's message goes at once.
    last_pushed: HashMap<String, tokio::time::Instant>,
}

/// A message read and not yet acknowledged; `push` is none for one that is not pushed (not
/// a new message, too old, undecodable), which is acknowledged in its turn.
struct Waiting {
    message: jetstream::Message,
    push: Option<Push>,
    /// A busy group's message, held until the linger ends.
    held: bool,
    /// Published already (one not held, while the burst lingered).
    pushed: bool,
}

/// A message to push, and to whom.
struct Push {
    sent: MsgSent,
    /// A group's message: its members, from the member cache.
    group: bool,
    users: Arc<Vec<String>>,
    operation_id: String,
    age_ms: i64,
}

impl Burst {
    fn new(linger: Duration) -> Self {
        Self {
            waiting: VecDeque::new(),
            linger,
            lingers: false,
            held: HashSet::new(),
            last_pushed: HashMap::new(),
        }
    }

    /// Reads `message` and resolves its recipients; holds it if it is a busy group's.
    async fn take(&mut self, state: &PushState, mut message: jetstream::Message) {
        let push = prepare(state, &mut message).await;
        let held = push.as_ref().is_some_and(|push| {
            let conversation = &push.sent.conversation_id;
            self.held.contains(conversation)
                || (push.group
                    && self
                        .last_pushed
                        .get(conversation)
                        .is_some_and(|at| at.elapsed() < self.linger))
        });
        if held && let Some(push) = &push {
            self.held.insert(push.sent.conversation_id.clone());
        }
        self.lingers |= held;
        self.waiting.push_back(Waiting {
            message,
            push,
            held,
            pushed: false,
        });
    }

    /// Pushes the waiting messages that are not held.
    async fn push_unheld(&mut self, state: &PushState, offline: &OfflinePush) {
        self.publish(state, offline, false).await;
    }

    /// Pushes every waiting message; returns them all, in order, to be acknowledged.
    async fn push(&mut self, state: &PushState, offline: &OfflinePush) -> Vec<jetstream::Message> {
        self.publish(state, offline, true).await;
        self.lingers = false;
        self.held.clear();
        self.waiting
            .drain(..)
            .map(|waiting| waiting.message)
            .collect()
    }

    /// Publishes the waiting messages not yet pushed, the held ones too if `with_held`.
    /// Consecutive messages of one conversation with the same recipients go out as one push.
    async fn publish(&mut self, state: &PushState, offline: &OfflinePush, with_held: bool) {
        // Pushes to each user are published one message at a time.
        let most = match state.config.fanout {
            PushFanout::Conversation => state.config.messages_per_push,
            PushFanout::PerUser => 1,
        };
        // Runs of one conversation and recipients, each conversation's in stream order.
        let mut runs: Vec<Vec<&Push>> = Vec::new();
        let mut last_run_of: HashMap<&str, usize> = HashMap::new();
        for push in self
            .waiting
            .iter()
            .filter(|waiting| !waiting.pushed && (with_held || !waiting.held))
            .filter_map(|waiting| waiting.push.as_ref())
        {
            let conversation = push.sent.conversation_id.as_str();
            match last_run_of.get(conversation) {
                Some(&run) if runs[run][0].users == push.users && runs[run].len() < most => {
                    runs[run].push(push);
                }
                _ => {
                    last_run_of.insert(conversation, runs.len());
                    runs.push(vec![push]);
                }
            }
        }
        for run in &runs {
            publish(state, offline, run).await;
        }
        let groups: Vec<String> = runs
            .iter()
            .filter(|run| run[0].group)
            .map(|run| run[0].sent.conversation_id.clone())
            .collect();
        for waiting in &mut self.waiting {
            waiting.pushed |= with_held || !waiting.held;
        }
        let now = tokio::time::Instant::now();
        if self.last_pushed.len() >= BUSY_GROUPS_KEPT {
            let linger = self.linger;
            self.last_pushed
                .retain(|_, at| now.duration_since(*at) < linger);
        }
        for conversation in groups {
            self.last_pushed.insert(conversation, now);
        }
    }
}

/// Acknowledgements of handled messages. A consumer made with the "all" ack policy (every
/// one since this build) gets one ack for many messages: the last handled, every
/// [`ACK_EVERY`] messages, and [`ACK_AFTER`] after the oldest unacknowledged one was
/// handled if no further message is waiting then. One made by an
/// earlier build, with explicit acks, gets one per message. After a crash the messages
/// handled since the last ack are pushed again: delivery is best effort, and clients drop
/// a message they already have.
struct Acks {
    all: bool,
    last: Option<jetstream::Message>,
    since: usize,
    /// When the oldest unacknowledged message was handled.
    oldest: Option<tokio::time::Instant>,
}

impl Acks {
    fn new(all: bool) -> Self {
        Self {
            all,
            last: None,
            since: 0,
            oldest: None,
        }
    }

    /// When the messages handled but not yet acknowledged should be, if there are any.
    fn due(&self) -> Option<tokio::time::Instant> {
        self.oldest.map(|oldest| oldest + ACK_AFTER)
    }

    async fn handled(&mut self, message: jetstream::Message) {
        if !self.all {
            ack(&message).await;
            return;
        }
        self.last = Some(message);
        self.oldest.get_or_insert_with(tokio::time::Instant::now);
        self.since += 1;
        if self.since >= ACK_EVERY {
            self.flush().await;
        }
    }

    async fn flush(&mut self) {
        if let Some(message) = self.last.take() {
            ack(&message).await;
        }
        self.since = 0;
        self.oldest = None;
    }
}

async fn ack(message: &jetstream::Message) {
    if let Err(error) = message.ack().await {
        tracing::warn!(%error, "push ack not sent");
    }
}

/// What to push for `message`, if anything. Takes the message's headers; what is left of it
/// still acknowledges it.
async fn prepare(state: &PushState, message: &mut jetstream::Message) -> Option<Push> {
    let record = take_record(message);
    let stream_sequence = record.stream_sequence;
    if record.kind != MsgSent::KIND {
        return None;
    }
    let sent: MsgSent = match record.decode() {
        Ok(sent) => sent,
        Err(error) => {
            tracing::error!(stream_sequence, %error, "not pushed: undecodable");
            return None;
        }
    };
    let age_ms = jetim_common::clock::now_millis().saturating_sub(sent.send_time);
    let max_age_ms =
        i64::try_from(state.config.max_age_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
    if age_ms > max_age_ms {
        metrics::counter!("jetim_push_skipped_total", "reason" => "too_old").increment(1);
        return None;
    }
    let (group, users) = match delivery::recipients(&sent) {
        Recipients::Users(users) => (false, Arc::new(users)),
        Recipients::GroupMembers(group_id) => match state.members.members(&group_id).await {
            Ok(members) => (true, members),
            Err(error) => {
                tracing::warn!(%group_id, %error, "group members unavailable; left to seq sync");
                metrics::counter!("jetim_push_skipped_total", "reason" => "members").increment(1);
                return None;
            }
        },
    };
    let operation_id = headers::text(&record.headers, headers::OPERATION)
        .unwrap_or_default()
        .to_owned();
    let push = Push {
        sent,
        group,
        users,
        operation_id,
        age_ms,
    };
    Some(push)
}

/// Publishes a run of messages of one conversation, all for the same recipients, in order.
async fn publish(state: &PushState, offline: &OfflinePush, run: &[&Push]) {
    let users: &[String] = &run[0].users;
    let published = match state.config.fanout {
        PushFanout::Conversation => {
            let messages: Vec<(&MsgSent, &str)> = run
                .iter()
                .map(|push| (&push.sent, push.operation_id.as_str()))
                .collect();
            delivery::publish_fanout_of(
                &state.nats,
                state.local_gateway.as_deref(),
                users,
                &messages,
            )
            .await
        }
        PushFanout::PerUser => {
            let mut published = Ok(());
            for push in run {
                published =
                    delivery::publish(&state.nats, users, &push.sent, &push.operation_id).await;
                if published.is_err() {
                    break;
                }
            }
            published
        }
    };
    match published {
        Ok(()) => {
            metrics::counter!("jetim_push_deliveries_total")
                .increment((users.len() * run.len()) as u64);
            metrics::histogram!("jetim_push_messages_per_push").record(run.len() as f64);
            for push in run {
                #[allow(clippy::cast_precision_loss)]
                metrics::histogram!("jetim_push_delay_seconds")
                    .record(push.age_ms.max(0) as f64 / 1000.0);
            }
        }
        Err(error) => tracing::warn!(%error, "push not published"),
    }
    if offline.is_enabled() {
        for push in run {
            offline.consider(state, &push.sent, users);
        }
    }
}
