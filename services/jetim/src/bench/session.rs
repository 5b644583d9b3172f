//! Simulated users on their own connections, and the driver that runs them through a load:
//! warm-up, rate steps, drain, and the check that every acknowledged message reached every
//! recipient once and can be pulled with gapless seqs.
//!
//! Each message's `clientMsgID` is `<sender>-<n>-<due µs>`: whoever receives it knows who
//! sent it, which of that sender's messages it is, and when it was due, without any shared
//! table.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use futures::{SinkExt as _, StreamExt as _};
use jetim_schemas::openim::msg::SendMsgResp;
use jetim_schemas::openim::sdkws::{
    GetMaxSeqReq, GetMaxSeqResp, MsgData, PullMessageBySeqsReq, PullMessageBySeqsResp, SeqRange,
};
use prost::Message as _;
use serde::Serialize;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;

use super::load::{self, Socket};
use super::record::{Recorder, Schedule, StepResult, Summary};

/// Where a user's messages go.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub(crate) recv_id: String,
    pub(crate) group_id: String,
    pub(crate) session_type: i32,
    pub(crate) conversation_id: String,
}

/// One simulated user.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub(crate) index: u32,
    pub(crate) user: String,
    pub(crate) target: Target,
    /// Index into [`Conversations::members`].
    pub(crate) conversation: usize,
    /// Its place among the senders, or `None` if it only receives.
    pub(crate) sender: Option<usize>,
    /// Whether it pulls its conversation at the end and reports what it found.
    pub(crate) verifies: bool,
}

/// Who is in each conversation (user indexes).
pub(crate) struct Conversations {
    pub(crate) members: Vec<Vec<u32>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Warmup,
    Load,
    Verify,
}

/// What the users share.
pub(crate) struct Shared {
    pub(crate) recorder: Recorder,
    phase: watch::Sender<Phase>,
    stop: AtomicBool,
    /// The client the users speak as.
    sdk: load::Sdk,
    senders: usize,
    text: String,
    /// Acknowledged messages per conversation.
    acked: Vec<AtomicU64>,
}

/// What one user saw.
#[derive(Debug, Default)]
pub(crate) struct Outcome {
    index: u32,
    conversation: usize,
    acked: Vec<u64>,
    /// Per sender, how often each of its messages (by `n`) arrived.
    received: HashMap<u32, Vec<u8>>,
    pull: Option<Pulled>,
    error: Option<String>,
    first_refusal: Option<String>,
    unanswered: u64,
    /// Verifying requests the server could not serve at once and served when tried again.
    retried: u64,
}

/// A conversation as pulled at the end.
#[derive(Debug, Default)]
struct Pulled {
    /// Seqs in `1..=max_seq` that did not come back.
    gaps: u64,
    /// The bench messages found: (sender, n).
    messages: HashSet<(u32, u64)>,
}

/// Whether every acknowledged message arrived, once, and can be pulled.
#[derive(Debug, Default, Serialize)]
pub(crate) struct Accounting {
    pub(crate) sent: u64,
    pub(crate) acked: u64,
    pub(crate) refused: u64,
    pub(crate) unanswered: u64,
    pub(crate) expected_deliveries: u64,
    pub(crate) delivered_once: u64,
    pub(crate) lost: u64,
    pub(crate) duplicated: u64,
    /// Deliveries of messages whose sender never heard an acknowledgement.
    pub(crate) delivered_unacked: u64,
    pub(crate) pulled_conversations: u64,
    /// Acknowledged messages a pull of their conversation did not return.
    pub(crate) missing_from_pull: u64,
    /// Requests of the check (1001, 1002) that the server answered with its internal error
    /// (it sheds a burst of pulls when none of its database connections frees up in time)
    /// and served when tried again.
    pub(crate) pulls_retried: u64,
    pub(crate) seq_gaps: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) errors: Vec<String>,
}

impl Accounting {
    pub(crate) fn clean(&self) -> bool {
        self.lost == 0
            && self.duplicated == 0
            && self.missing_from_pull == 0
            && self.seq_gaps == 0
            && self.unanswered == 0
            && self.errors.is_empty()
    }
}

/// How the rate steps go.
#[derive(Debug, Clone)]
pub(crate) struct LoadShape {
    pub(crate) rates: Vec<f64>,
    pub(crate) step: Duration,
    /// Load at the first rate before the first step, measured in none.
    pub(crate) ramp: Duration,
    /// A step whose p99 send→deliver is above this did not keep up.
    pub(crate) p99_bound_ms: Option<f64>,
    /// Whether the run stops after the first step that did not keep up.
    pub(crate) stop_when_behind: bool,
}

/// What a run produced.
pub(crate) struct RunResult {
    pub(crate) steps: Vec<StepResult>,
    /// Steps that kept up (p99 within the bound, everything acknowledged and delivered).
    pub(crate) passed: Vec<bool>,
    pub(crate) overall: (Summary, Summary),
    pub(crate) accounting: Accounting,
    pub(crate) seconds: Vec<super::record::Second>,
    /// The watched processes' CPU time from the start of the load (the ramp) to a second or
    /// so after its last step, when the step is judged; not the warm-up, the drain or the
    /// pulls. Per second, it is averaged over that whole span.
    pub(crate) cpu: Vec<super::cpu::ProcessCpu>,
}

/// What the load client reads of a 2001 push: the clientMsgID of each message (field 4 of
/// its `MsgData`), under the same field numbers as `PushMessages` and `PullMsgs`. prost
/// skips the rest; decoding every field of every message was a fifth of the client's CPU
/// in the group scenario, where the client shares the cores with the server it loads.
#[derive(Clone, PartialEq, prost::Message)]
struct PushedIds {
    #[prost(map = "string, message", tag = "1")]
    msgs: HashMap<String, PulledIds>,
    #[prost(map = "string, message", tag = "2")]
    notification_msgs: HashMap<String, PulledIds>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct PulledIds {
    #[prost(message, repeated, tag = "1")]
    msgs: Vec<MessageId>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct MessageId {
    #[prost(string, tag = "4")]
    client_msg_id: String,
}

/// How many times the check at the end tries a request the server could not serve then.
const VERIFY_TRIES: u64 = 5;

/// Whether the server answered that it could not serve a request then (OpenIM's 500), as
/// when none of its database connections freed up in time.
fn shed(error: &anyhow::Error) -> bool {
    error
        .downcast_ref::<load::Refused>()
        .is_some_and(|refused| refused.code == load::SERVER_INTERNAL_ERROR)
}

fn client_msg_id(index: u32, n: u64, due: u64) -> String {
    format!("{index}-{n}-{due}")
}

fn parse_client_msg_id(id: &str) -> Option<(u32, u64, u64)> {
    let mut parts = id.splitn(3, '-');
    Some((
        parts.next()?.parse().ok()?,
        parts.next()?.parse().ok()?,
        parts.next()?.parse().ok()?,
    ))
}

/// Runs `plans` (one per connection in `sockets`) through warm-up, `shape`, drain and
/// checks. Every member of a sender's conversation but the sender receives its messages.
pub(crate) async fn run(
    plans: Vec<Plan>,
    sockets: Vec<Socket>,
    conversations: &Conversations,
    shape: LoadShape,
    payload: usize,
    sdk: load::Sdk,
    cpu: &[super::cpu::Watched],
) -> anyhow::Result<RunResult> {
    let senders = plans.iter().filter(|plan| plan.sender.is_some()).count();
    let epoch = std::time::Instant::now();
    let (phase, _) = watch::channel(Phase::Warmup);
    let shared = Arc::new(Shared {
        recorder: Recorder::new(epoch),
        phase,
        stop: AtomicBool::new(false),
        sdk,
        senders,
        text: serde_json::json!({ "content": "x".repeat(payload) }).to_string(),
        acked: conversations
            .members
            .iter()
            .map(|_| AtomicU64::new(0))
            .collect(),
    });
    let recipients_of = |plan: &Plan| conversations.members[plan.conversation].len() as u64 - 1;
    let warm_deliveries: u64 = plans
        .iter()
        .filter(|plan| plan.sender.is_some())
        .map(recipients_of)
        .sum();
    let fanout = plans
        .iter()
        .find(|plan| plan.sender.is_some())
        .map_or(1, recipients_of);

    let tasks: Vec<_> = plans
        .iter()
        .cloned()
        .zip(sockets)
        .map(|(plan, socket)| tokio::spawn(user(plan, socket, Arc::clone(&shared))))
        .collect();

    // Warm-up: one message from every sender, delivered everywhere, before measuring.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while shared.recorder.delivered.load(Ordering::Relaxed) < warm_deliveries {
        if tokio::time::Instant::now() > deadline {
            anyhow::bail!(
                "warm-up: {} of {warm_deliveries} deliveries within 60 s",
                shared.recorder.delivered.load(Ordering::Relaxed)
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!("warm-up: {warm_deliveries} deliveries; load starts");

    let step_micros = u64::try_from(shape.step.as_micros()).unwrap_or(u64::MAX);
    let ramp_micros = u64::try_from(shape.ramp.as_micros()).unwrap_or(u64::MAX);
    let schedule = Schedule {
        start_micros: shared.recorder.now_micros() + 200_000 + ramp_micros,
        step_micros,
        rates: shape.rates.clone(),
        ramp_micros,
    };
    let cpu_watch = super::cpu::CpuWatch::start(cpu);
    let acked_before = shared.recorder.acked.load(Ordering::Relaxed);
    shared.recorder.start(schedule.clone());
    shared.phase.send_replace(Phase::Load);

    let mut passed = Vec::new();
    let mut last = (0, 0, 0);
    for (step, rate) in shape.rates.iter().enumerate() {
        let end = schedule.start_micros + step_micros * (step as u64 + 1);
        // Progress once a second, then judge the step a moment after it ends.
        loop {
            let now = shared.recorder.now_micros();
            if now >= end + 1_000_000 {
                break;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
            let totals = (
                shared.recorder.sent.load(Ordering::Relaxed),
                shared.recorder.acked.load(Ordering::Relaxed),
                shared.recorder.delivered.load(Ordering::Relaxed),
            );
            let p99 = shared
                .recorder
                .last_full_second()
                .map_or(0.0, |second| second.deliver_p99_ms);
            let (sent, acked, delivered) =
                (totals.0 - last.0, totals.1 - last.1, totals.2 - last.2);
            if shared.recorder.now_micros() < schedule.start_micros {
                eprintln!(
                    "ramp at {rate:.0}/s: last second sent {sent}, acked {acked}, delivered {delivered}"
                );
            } else {
                eprintln!(
                    "step {step} at {rate:.0}/s: last second sent {sent}, acked {acked}, delivered {delivered}; p99 send→deliver {p99:.1} ms"
                );
            }
            last = totals;
        }
        let result = shared.recorder.step(step);
        let kept_up = kept_up(&result, *rate, fanout, &shape);
        passed.push(kept_up);
        if shape.stop_when_behind && !kept_up {
            eprintln!(
                "step {step} at {rate:.0}/s did not keep up (p99 {:.1} ms, {} sent, {} acked, {} delivered); stopping",
                result.deliver.p99_ms, result.sent, result.acked, result.delivered
            );
            shared.stop.store(true, Ordering::Relaxed);
            break;
        }
    }
    let ran = passed.len();
    shared.stop.store(true, Ordering::Relaxed);
    let cpu = cpu_watch.finish(shared.recorder.acked.load(Ordering::Relaxed) - acked_before);

    // Drain: wait until every send was answered and every acknowledged message arrived
    // everywhere. A server that fell behind answers for seconds after the last send, and
    // the users stop reading once the check begins.
    let deadline = tokio::time::Instant::now() + DRAIN_LIMIT;
    loop {
        let recorder = &shared.recorder;
        let outstanding = Outstanding::of(
            recorder.sent.load(Ordering::Relaxed),
            recorder.acked.load(Ordering::Relaxed),
            recorder.refused.load(Ordering::Relaxed),
            recorder.delivered.load(Ordering::Relaxed),
            fanout,
        );
        if outstanding.none() {
            break;
        }
        if tokio::time::Instant::now() > deadline {
            eprintln!(
                "drain: after {} s, {} sends unanswered and {} deliveries outstanding",
                DRAIN_LIMIT.as_secs(),
                outstanding.replies,
                outstanding.deliveries
            );
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Outstanding replies get a moment too.
    tokio::time::sleep(Duration::from_millis(500)).await;
    shared.phase.send_replace(Phase::Verify);
    eprintln!("load done; pulling every conversation to check it");

    let mut outcomes = Vec::with_capacity(tasks.len());
    for task in tasks {
        outcomes.push(task.await?);
    }
    let accounting = account(&outcomes, &plans, conversations, &shared);
    Ok(RunResult {
        steps: (0..ran).map(|step| shared.recorder.step(step)).collect(),
        passed,
        overall: shared.recorder.overall(0..ran),
        accounting,
        seconds: shared.recorder.seconds(),
        cpu,
    })
}

fn account(
    outcomes: &[Outcome],
    plans: &[Plan],
    conversations: &Conversations,
    shared: &Shared,
) -> Accounting {
    let mut accounting = Accounting {
        sent: shared.recorder.sent.load(Ordering::Relaxed),
        acked: shared.recorder.acked.load(Ordering::Relaxed),
        refused: shared.recorder.refused.load(Ordering::Relaxed),
        ..Accounting::default()
    };
    let by_index: HashMap<u32, &Outcome> = outcomes.iter().map(|o| (o.index, o)).collect();
    let acked_by_sender: HashMap<u32, HashSet<u64>> = outcomes
        .iter()
        .map(|o| (o.index, o.acked.iter().copied().collect()))
        .collect();
    let pulls: HashMap<usize, &Pulled> = outcomes
        .iter()
        .filter_map(|o| o.pull.as_ref().map(|pull| (o.conversation, pull)))
        .collect();
    for outcome in outcomes {
        accounting.unanswered += outcome.unanswered;
        accounting.pulls_retried += outcome.retried;
        for text in [&outcome.error, &outcome.first_refusal]
            .into_iter()
            .flatten()
        {
            if accounting.errors.len() < 10 {
                accounting.errors.push(format!(
                    "user {}: {text}",
                    plans[outcome.index as usize].user
                ));
            }
        }
        let pull = pulls.get(&outcome.conversation);
        for &n in &outcome.acked {
            if let Some(pull) = pull
                && !pull.messages.contains(&(outcome.index, n))
            {
                accounting.missing_from_pull += 1;
            }
            for &recipient in &conversations.members[outcome.conversation] {
                if recipient == outcome.index {
                    continue;
                }
                accounting.expected_deliveries += 1;
                let times = by_index
                    .get(&recipient)
                    .and_then(|r| r.received.get(&outcome.index))
                    .and_then(|counts| counts.get(n as usize))
                    .copied()
                    .unwrap_or(0);
                match times {
                    0 => accounting.lost += 1,
                    1 => accounting.delivered_once += 1,
                    more => {
                        accounting.delivered_once += 1;
                        accounting.duplicated += u64::from(more - 1);
                    }
                }
            }
        }
        // Anything this user received from a sender that sender never saw acknowledged.
        for (sender, counts) in &outcome.received {
            let acked = acked_by_sender.get(sender);
            accounting.delivered_unacked += counts
                .iter()
                .enumerate()
                .filter(|(n, times)| {
                    **times > 0 && !acked.is_some_and(|acked| acked.contains(&(*n as u64)))
                })
                .count() as u64;
        }
    }
    for pull in pulls.values() {
        accounting.pulled_conversations += 1;
        accounting.seq_gaps += pull.gaps;
    }
    accounting
}

/// One user: sends on its schedule, counts what arrives, pulls its conversation at the end.
async fn user(plan: Plan, mut socket: Socket, shared: Arc<Shared>) -> Outcome {
    let mut state = UserState {
        plan: &plan,
        shared: &shared,
        outcome: Outcome {
            index: plan.index,
            conversation: plan.conversation,
            ..Outcome::default()
        },
        pending: HashMap::new(),
        next_n: 0,
    };
    if let Err(error) = state.drive(&mut socket).await {
        state.outcome.error = Some(format!("{error:#}"));
    }
    state.outcome.unanswered = state.pending.len() as u64;
    let _ = socket.close(None).await;
    state.outcome
}

struct UserState<'a> {
    plan: &'a Plan,
    shared: &'a Shared,
    outcome: Outcome,
    /// Sent, not yet answered: n → due.
    pending: HashMap<u64, u64>,
    next_n: u64,
}

impl UserState<'_> {
    async fn drive(&mut self, socket: &mut Socket) -> anyhow::Result<()> {
        let mut phase = self.shared.phase.subscribe();
        if self.plan.sender.is_some() {
            let now = self.shared.recorder.now_micros();
            self.send(socket, now).await?;
        }
        while *phase.borrow_and_update() == Phase::Warmup {
            tokio::select! {
                changed = phase.changed() => changed?,
                frame = socket.next() => self.frame(frame)?,
            }
        }
        let schedule = self.shared.recorder.schedule().cloned();
        let mut sends = match (self.plan.sender, &schedule) {
            (Some(slot), Some(schedule)) => schedule
                .sends(slot, self.shared.senders)
                .collect::<Vec<_>>()
                .into_iter(),
            _ => Vec::new().into_iter(),
        }
        .peekable();
        {
            // One wait for the end of the load and one timer for the whole loop, the timer
            // reset as the timetable moves on; both gone before the pull. A new future of each
            // for every frame registered and removed a waiter on the shared phase and a timer
            // entry about four times a message (5% of the load client's samples in `perf`;
            // its CPU fell 2–5% at 10,000/s).
            let verifying = async {
                // The value's guard is not `Send`: gone before the loop's sends are awaited.
                phase
                    .wait_for(|phase| *phase == Phase::Verify)
                    .await
                    .map(drop)
            };
            let timer = tokio::time::sleep_until(tokio::time::Instant::now());
            tokio::pin!(verifying, timer);
            let mut armed = None;
            loop {
                let next = if self.shared.stop.load(Ordering::Relaxed) {
                    None
                } else {
                    sends.peek().copied()
                };
                let wake = next.map(|due| self.shared.recorder.instant_at(due));
                if wake != armed {
                    if let Some(wake) = wake {
                        timer.as_mut().reset(wake);
                    }
                    armed = wake;
                }
                tokio::select! {
                    biased;
                    verify = &mut verifying => {
                        verify?;
                        break;
                    }
                    frame = socket.next() => self.frame(frame)?,
                    () = &mut timer, if armed.is_some() => {
                        armed = None;
                        if let Some(due) = sends.next() {
                            self.send(socket, due).await?;
                        }
                    }
                }
            }
        }
        if self.plan.verifies {
            self.outcome.pull = Some(self.pull(socket).await?);
        }
        Ok(())
    }

    async fn send(&mut self, socket: &mut Socket, due: u64) -> anyhow::Result<()> {
        let n = self.next_n;
        self.next_n += 1;
        let target = &self.plan.target;
        let message = MsgData {
            send_id: self.plan.user.clone(),
            recv_id: target.recv_id.clone(),
            group_id: target.group_id.clone(),
            client_msg_id: client_msg_id(self.plan.index, n, due),
            session_type: target.session_type,
            content_type: 101,
            content: self.shared.text.clone().into_bytes(),
            sender_platform_id: self.shared.sdk.platform().id(),
            create_time: jetim_common::clock::now_millis(),
            ..MsgData::default()
        };
        self.pending.insert(n, due);
        self.shared.recorder.sent(due);
        socket
            .send(load::request(
                self.shared.sdk,
                &self.plan.user,
                load::SEND_MSG,
                &n.to_string(),
                &message.encode_to_vec(),
            ))
            .await?;
        Ok(())
    }

    fn frame(
        &mut self,
        frame: Option<Result<Message, tokio_tungstenite::tungstenite::Error>>,
    ) -> anyhow::Result<()> {
        let frame = match frame {
            Some(Ok(Message::Close(reason))) => {
                anyhow::bail!("the gateway closed the connection: {reason:?}")
            }
            Some(frame) => frame?,
            None => anyhow::bail!("the connection ended"),
        };
        if let Some(incoming) = load::incoming(self.shared.sdk, &frame)? {
            self.incoming(incoming)?;
        }
        Ok(())
    }

    fn incoming(&mut self, incoming: load::Incoming) -> anyhow::Result<()> {
        match incoming.req_identifier {
            load::SEND_MSG => {
                let n: u64 = incoming.msg_incr.parse()?;
                let Some(due) = self.pending.remove(&n) else {
                    anyhow::bail!("a reply to message {n}, which is not outstanding");
                };
                if incoming.err_code == 0 {
                    let reply = SendMsgResp::decode(incoming.data.as_slice())?;
                    anyhow::ensure!(
                        parse_client_msg_id(&reply.client_msg_id).map(|(_, n, _)| n) == Some(n),
                        "the reply to message {n} names {}",
                        reply.client_msg_id
                    );
                    self.outcome.acked.push(n);
                    self.shared.acked[self.plan.conversation].fetch_add(1, Ordering::Relaxed);
                    self.shared.recorder.acked(due);
                } else {
                    self.shared.recorder.refused();
                    self.outcome.first_refusal.get_or_insert_with(|| {
                        format!("refused: {} {}", incoming.err_code, incoming.err_msg)
                    });
                }
            }
            load::PUSH_MSG => {
                let pushed = PushedIds::decode(incoming.data.as_slice())?;
                for pulled in pushed
                    .msgs
                    .values()
                    .chain(pushed.notification_msgs.values())
                {
                    for message in &pulled.msgs {
                        self.arrived(&message.client_msg_id);
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// A push (or a late reply) that came while waiting for another reply: counted as
    /// usual, and a frame that makes no sense is the user's error.
    fn aside(&mut self, incoming: load::Incoming) {
        if let Err(error) = self.incoming(incoming) {
            self.outcome
                .error
                .get_or_insert_with(|| format!("{error:#}"));
        }
    }

    fn arrived(&mut self, client_msg_id: &str) {
        let Some((sender, n, due)) = parse_client_msg_id(client_msg_id) else {
            return; // not a bench message (a notification)
        };
        if sender == self.plan.index {
            return; // the echo to the sender's own connection
        }
        let counts = self.outcome.received.entry(sender).or_default();
        let slot = usize::try_from(n).unwrap_or(usize::MAX);
        if counts.len() <= slot {
            counts.resize(slot + 1, 0);
        }
        counts[slot] = counts[slot].saturating_add(1);
        if counts[slot] == 1 {
            self.shared.recorder.delivered(due);
        }
    }

    /// A request of the check at the end, tried again, a second longer apart each time, up
    /// to [`VERIFY_TRIES`] times in all while the server answers that it could not serve it
    /// then: a pull of every conversation at once is a burst that the server sheds, and the
    /// accounting is about what was kept. The retries are counted apart.
    async fn verifying_call(
        &mut self,
        socket: &mut Socket,
        identifier: i32,
        incr: &str,
        data: &[u8],
    ) -> anyhow::Result<Vec<u8>> {
        let user = self.plan.user.clone();
        let mut tries = 1;
        loop {
            let reply = load::call(
                self.shared.sdk,
                socket,
                &user,
                identifier,
                incr,
                data,
                |other| self.aside(other),
            )
            .await;
            if !reply.as_ref().err().is_some_and(shed) || tries >= VERIFY_TRIES {
                return reply;
            }
            self.outcome.retried += 1;
            tokio::time::sleep(Duration::from_secs(tries)).await;
            tries += 1;
        }
    }

    /// Pulls the whole conversation, retrying while the read model is behind the log.
    async fn pull(&mut self, socket: &mut Socket) -> anyhow::Result<Pulled> {
        let conversation = self.plan.target.conversation_id.clone();
        let expected = self.shared.acked[self.plan.conversation].load(Ordering::Relaxed);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        let mut incr = 0_u64;
        loop {
            incr += 1;
            let user = self.plan.user.clone();
            let data = self
                .verifying_call(
                    socket,
                    load::GET_NEWEST_SEQ,
                    &format!("v{incr}"),
                    &GetMaxSeqReq {
                        user_id: user.clone(),
                    }
                    .encode_to_vec(),
                )
                .await?;
            let max_seq = GetMaxSeqResp::decode(data.as_slice())?
                .max_seqs
                .get(&conversation)
                .copied()
                .unwrap_or(0);
            let mut pulled = Pulled::default();
            let mut seqs = HashSet::new();
            let mut begin = 1;
            while begin <= max_seq {
                let end = (begin + 999).min(max_seq);
                incr += 1;
                let request = PullMessageBySeqsReq {
                    user_id: user.clone(),
                    seq_ranges: vec![SeqRange {
                        conversation_id: conversation.clone(),
                        begin,
                        end,
                        num: end - begin + 1,
                    }],
                    order: 0,
                };
                let data = self
                    .verifying_call(
                        socket,
                        load::PULL_BY_SEQ_LIST,
                        &format!("v{incr}"),
                        &request.encode_to_vec(),
                    )
                    .await?;
                let reply = PullMessageBySeqsResp::decode(data.as_slice())?;
                for message in reply
                    .msgs
                    .get(&conversation)
                    .into_iter()
                    .chain(reply.notification_msgs.get(&conversation))
                    .flat_map(|pulled| &pulled.msgs)
                {
                    seqs.insert(message.seq);
                    if let Some((sender, n, _)) = parse_client_msg_id(&message.client_msg_id) {
                        pulled.messages.insert((sender, n));
                    }
                }
                begin = end + 1;
            }
            pulled.gaps = (1..=max_seq).filter(|seq| !seqs.contains(seq)).count() as u64;
            if (pulled.messages.len() as u64 >= expected && pulled.gaps == 0)
                || tokio::time::Instant::now() > deadline
            {
                return Ok(pulled);
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

/// How long the drain after the load waits for what is still outstanding.
const DRAIN_LIMIT: Duration = Duration::from_secs(60);

/// What the load is still waiting for: replies to sends, and deliveries of acknowledged
/// messages to each of their `fanout` recipients.
#[derive(Debug, PartialEq, Eq)]
struct Outstanding {
    replies: u64,
    deliveries: u64,
}

impl Outstanding {
    fn of(sent: u64, acked: u64, refused: u64, delivered: u64, fanout: u64) -> Self {
        Self {
            replies: sent.saturating_sub(acked + refused),
            deliveries: (acked * fanout).saturating_sub(delivered),
        }
    }

    fn none(&self) -> bool {
        self.replies == 0 && self.deliveries == 0
    }
}

/// Whether a step at `rate` kept up: it sent its rate, 99% of that was acknowledged and
/// delivered to each of `fanout` recipients, and its p99 send→deliver is within the bound.
fn kept_up(result: &StepResult, rate: f64, fanout: u64, shape: &LoadShape) -> bool {
    let expected = result.sent as f64;
    result.acked as f64 >= 0.99 * expected
        && result.delivered as f64 >= 0.99 * expected * fanout as f64
        && expected >= 0.97 * rate * shape.step.as_secs_f64()
        && shape
            .p99_bound_ms
            .is_none_or(|bound| result.deliver.p99_ms <= bound)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_server_that_could_not_serve_a_request_then_is_asked_again() {
        let refused = |code| {
            anyhow::Error::from(load::Refused {
                identifier: load::PULL_BY_SEQ_LIST,
                code,
                message: "no database connection".to_owned(),
            })
        };
        assert!(shed(&refused(500)));
        assert!(shed(&refused(500).context("pulling")));
        assert!(!shed(&refused(1001)));
        assert!(!shed(&refused(1004)));
        assert!(!shed(&anyhow::anyhow!(
            "request 1002 failed: 500 something"
        )));
        assert!(!shed(&anyhow::anyhow!("the gateway closed the connection")));
    }

    #[test]
    fn the_drain_waits_for_every_reply_as_well_as_every_delivery() {
        // Every acknowledged message delivered to both recipients, but sends still wait
        // for their replies: a server that fell behind is still appending them.
        let behind = Outstanding::of(10_000, 9_000, 0, 18_000, 2);
        assert_eq!(
            behind,
            Outstanding {
                replies: 1_000,
                deliveries: 0
            }
        );
        assert!(!behind.none());
        // Every send answered, one way or the other, but deliveries missing.
        let undelivered = Outstanding::of(10_000, 9_990, 10, 19_970, 2);
        assert_eq!(undelivered.deliveries, 10);
        assert!(!undelivered.none());
        assert!(Outstanding::of(10_000, 9_990, 10, 19_980, 2).none());
        // Deliveries of messages whose reply has not been read yet count for nothing extra.
        assert!(Outstanding::of(10, 10, 0, 25, 2).none());
    }

    #[test]
    fn a_step_keeps_up_when_everything_arrived_and_its_p99_is_within_the_bound() {
        let shape = |bound: Option<f64>| LoadShape {
            rates: vec![1000.0],
            step: Duration::from_secs(10),
            ramp: Duration::ZERO,
            p99_bound_ms: bound,
            stop_when_behind: false,
        };
        let step = |acked: u64, delivered: u64, p99_ms: f64| StepResult {
            offered_per_second: 1000.0,
            seconds: 10.0,
            sent: 10_000,
            acked,
            delivered,
            acked_per_second: 1000.0,
            delivered_per_second: 1000.0,
            ack: Summary::default(),
            deliver: Summary {
                p99_ms,
                ..Summary::default()
            },
        };
        let bound = shape(Some(100.0));
        assert!(kept_up(&step(10_000, 20_000, 99.0), 1000.0, 2, &bound));
        // Everything arrived, but seconds late.
        assert!(!kept_up(&step(10_000, 20_000, 3000.0), 1000.0, 2, &bound));
        assert!(kept_up(
            &step(10_000, 20_000, 3000.0),
            1000.0,
            2,
            &shape(None)
        ));
        // Deliveries missing for one of two recipients, or acks missing.
        assert!(!kept_up(&step(10_000, 10_000, 5.0), 1000.0, 2, &bound));
        assert!(!kept_up(&step(9_000, 20_000, 5.0), 1000.0, 2, &bound));
        // The client could not send the rate it was asked for.
        assert!(!kept_up(&step(10_000, 20_000, 5.0), 1200.0, 2, &bound));
    }

    #[test]
    fn a_push_is_read_for_its_client_msg_ids_alone() {
        use jetim_schemas::openim::sdkws::{MsgData, PullMsgs, PushMessages};
        let message = |id: &str| MsgData {
            send_id: "u1".into(),
            recv_id: "u2".into(),
            client_msg_id: id.into(),
            server_msg_id: "s".into(),
            content: b"{\"content\":\"x\"}".to_vec(),
            seq: 3,
            ..MsgData::default()
        };
        let pulled = |ids: &[&str]| PullMsgs {
            msgs: ids.iter().map(|id| message(id)).collect(),
            is_end: false,
            end_seq: 0,
        };
        let pushed = PushMessages {
            msgs: [
                ("si_u1_u2".to_owned(), pulled(&["1-1-5", "1-2-6"])),
                ("sg_g".to_owned(), pulled(&["2-1-7"])),
            ]
            .into_iter()
            .collect(),
            notification_msgs: [("n_u1_u2".to_owned(), pulled(&["note"]))]
                .into_iter()
                .collect(),
        };
        let read = PushedIds::decode(pushed.encode_to_vec().as_slice()).unwrap();
        let ids = |map: &HashMap<String, PulledIds>, key: &str| -> Vec<String> {
            map[key]
                .msgs
                .iter()
                .map(|m| m.client_msg_id.clone())
                .collect()
        };
        assert_eq!(read.msgs.len(), 2);
        assert_eq!(ids(&read.msgs, "si_u1_u2"), ["1-1-5", "1-2-6"]);
        assert_eq!(ids(&read.msgs, "sg_g"), ["2-1-7"]);
        assert_eq!(ids(&read.notification_msgs, "n_u1_u2"), ["note"]);
    }

    #[test]
    fn a_client_msg_id_names_its_sender_number_and_due_time() {
        let id = client_msg_id(17, 42, 1_234_567);
        assert!(id.len() <= 64, "the gateway's limit");
        assert_eq!(parse_client_msg_id(&id), Some((17, 42, 1_234_567)));
        assert_eq!(parse_client_msg_id("notification-1"), None);
        assert_eq!(parse_client_msg_id("1-2"), None);
    }

    fn outcome(index: u32, acked: &[u64], received: &[(u32, &[u8])]) -> Outcome {
        Outcome {
            index,
            conversation: 0,
            acked: acked.to_vec(),
            received: received
                .iter()
                .map(|(sender, counts)| (*sender, counts.to_vec()))
                .collect(),
            ..Outcome::default()
        }
    }

    #[test]
    fn the_accounting_finds_lost_duplicated_and_unpulled_messages() {
        let plan = |index: u32| Plan {
            index,
            user: format!("u{index}"),
            target: Target {
                recv_id: String::new(),
                group_id: String::new(),
                session_type: 1,
                conversation_id: "si_u0_u1".into(),
            },
            conversation: 0,
            sender: Some(index as usize),
            verifies: index == 0,
        };
        let plans = vec![plan(0), plan(1)];
        let conversations = Conversations {
            members: vec![vec![0, 1]],
        };
        let (phase, _) = watch::channel(Phase::Warmup);
        let shared = Shared {
            recorder: Recorder::new(std::time::Instant::now()),
            phase,
            stop: AtomicBool::new(false),
            sdk: load::Sdk::Js,
            senders: 2,
            text: String::new(),
            acked: vec![AtomicU64::new(0)],
        };
        // u0's 0, 1, 2 acked: u1 got 0 once, 1 twice, 2 never. u1's 0 acked and got once;
        // u0 also got u1's 1, which u1 never saw acknowledged.
        let mut zero = outcome(0, &[0, 1, 2], &[(1, &[1, 1])]);
        zero.pull = Some(Pulled {
            gaps: 1,
            messages: [(0, 0), (0, 1), (1, 0)].into_iter().collect(),
        });
        let one = outcome(1, &[0], &[(0, &[1, 2, 0])]);
        let accounting = account(&[zero, one], &plans, &conversations, &shared);
        assert_eq!(accounting.expected_deliveries, 4);
        assert_eq!(accounting.delivered_once, 3);
        assert_eq!(accounting.lost, 1);
        assert_eq!(accounting.duplicated, 1);
        assert_eq!(accounting.delivered_unacked, 1);
        assert_eq!(accounting.missing_from_pull, 1, "u0's 2");
        assert_eq!(accounting.seq_gaps, 1);
        assert!(!accounting.clean());
    }
}
