//! `jetim bench chat`: pairs of users in single chats, every user on its own connection,
//! both members of a pair sending to each other.

use std::time::Duration;

use jetim_common::config::Config;
use jetim_messaging::conversation::{SessionType, chat_conversation_id};

use super::load::{self, Stack};
use super::session::{self, Conversations, LoadShape, Plan, Target};
use super::{Figure, Output, Report, baseline};

#[derive(Debug, Clone, clap::Args)]
pub(crate) struct ChatArgs {
    /// Pairs of users; each user holds one connection and sends to the other.
    #[arg(long, default_value_t = 500)]
    pairs: usize,
    /// Messages a second, all users together; the first step's when stepping.
    #[arg(long, default_value_t = 10_000.0)]
    rate: f64,
    /// Seconds at the rate, or per step.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// Step the rate up by this much after each step, until a step does not keep up.
    #[arg(long)]
    step: Option<f64>,
    /// The highest rate stepped to.
    #[arg(long, default_value_t = 60_000.0)]
    max_rate: f64,
    /// A step whose p99 send→deliver is above this does not keep up; when stepping, the
    /// run stops there.
    #[arg(long, default_value_t = 100.0)]
    p99_bound_ms: f64,
    /// Seconds of load at the first rate before the first step, measured in no step: the
    /// first seconds after idle pay for cold caches and growing batches.
    #[arg(long, default_value_t = 2)]
    ramp_seconds: u64,
    /// Bytes of text per message.
    #[arg(long, default_value_t = 100)]
    payload: usize,
    /// Messages for each baseline.
    #[arg(long, default_value_t = 100_000)]
    baseline_messages: u64,
    #[command(flatten)]
    connecting: load::Connecting,
    #[command(flatten)]
    cpu: super::cpu::CpuArgs,
    #[command(flatten)]
    pub(crate) output: Output,
}

impl ChatArgs {
    fn shape(&self) -> LoadShape {
        let step = Duration::from_secs(self.seconds.max(1));
        match self.step {
            Some(increment) if increment > 0.0 => {
                let mut rates = Vec::new();
                let mut rate = self.rate;
                while rate <= self.max_rate && rates.len() < 100 {
                    rates.push(rate);
                    rate += increment;
                }
                LoadShape {
                    rates,
                    step,
                    ramp: Duration::from_secs(self.ramp_seconds),
                    p99_bound_ms: Some(self.p99_bound_ms),
                    stop_when_behind: true,
                }
            }
            _ => LoadShape {
                rates: vec![self.rate],
                step,
                ramp: Duration::from_secs(self.ramp_seconds),
                p99_bound_ms: Some(self.p99_bound_ms),
                stop_when_behind: false,
            },
        }
    }
}

pub(crate) async fn run(
    config: &Config,
    client: &async_nats::Client,
    jetstream: &async_nats::jetstream::Context,
    args: ChatArgs,
) -> anyhow::Result<Report> {
    let mut report = Report::new(
        "chat",
        serde_json::json!({
            "pairs": args.pairs,
            "rate": args.rate,
            "seconds": args.seconds,
            "step": args.step,
            "max_rate": args.max_rate,
            "p99_bound_ms": args.p99_bound_ms,
            "ramp_seconds": args.ramp_seconds,
            "payload_bytes": args.payload,
            "sdk": args.connecting.sdk.name(),
        }),
    );
    let pairs = args.pairs.max(1);
    let stack = Stack::open(config, jetstream, args.connecting.sdk).await?;

    // Baselines first, on the same server, while jetim is idle.
    let body = baseline::event_body(args.payload)?;
    eprintln!(
        "baselines: {} messages of {} bytes",
        args.baseline_messages,
        body.len()
    );
    let raw = baseline::raw_append(
        jetstream,
        body.clone(),
        args.baseline_messages,
        pairs,
        pairs.min(256),
    )
    .await?;
    let core = baseline::core_publish(client, body, args.baseline_messages, pairs).await?;

    let tag = load::run_tag();
    let users: Vec<String> = (0..pairs * 2).map(|i| format!("b{tag}u{i}")).collect();
    eprintln!("registering {} users", users.len());
    stack.register(&users).await?;
    let (sockets, connected) = stack.connect_all(&users, &args.connecting).await?;

    let plans: Vec<Plan> = users
        .iter()
        .enumerate()
        .map(|(index, user)| {
            let peer = &users[index ^ 1];
            Plan {
                index: u32::try_from(index).unwrap_or(u32::MAX),
                user: user.clone(),
                target: Target {
                    recv_id: peer.clone(),
                    group_id: String::new(),
                    session_type: 1,
                    conversation_id: chat_conversation_id(SessionType::Single, user, peer, ""),
                },
                conversation: index / 2,
                sender: Some(index),
                verifies: index % 2 == 0,
            }
        })
        .collect();
    let conversations = Conversations {
        members: (0..pairs)
            .map(|pair| {
                let first = u32::try_from(pair * 2).unwrap_or(u32::MAX);
                vec![first, first + 1]
            })
            .collect(),
    };
    let shape = args.shape();
    let run = session::run(
        plans,
        sockets,
        &conversations,
        shape.clone(),
        args.payload,
        args.connecting.sdk,
        &args.cpu.watched,
    )
    .await?;

    // The rate end to end: of acks and deliveries, whichever was slower (each message has
    // one recipient). The fixed rate's step, or the fastest step that kept up; a fixed rate
    // that fell behind is reported as such and counts for no target.
    let end_to_end =
        |step: &super::record::StepResult| step.acked_per_second.min(step.delivered_per_second);
    let steps = || run.steps.iter().zip(run.passed.iter().copied());
    let measured = steps()
        .filter(|(_, kept_up)| *kept_up || !shape.stop_when_behind)
        .max_by(|(a, _), (b, _)| end_to_end(a).total_cmp(&end_to_end(b)));
    let at_10k = steps()
        .find(|(step, _)| (step.offered_per_second - 10_000.0).abs() < 1.0)
        .map(|(step, kept_up)| (step.deliver.p99_ms, kept_up));
    let sustained = measured.is_some_and(|(_, kept_up)| kept_up);
    let chat = match measured {
        Some((step, kept_up)) => {
            let messages = step.acked.min(step.delivered);
            Figure::rate(
                if kept_up {
                    "chat: sustained msg/s, acked and delivered"
                } else {
                    "chat: msg/s acked and delivered, fell behind"
                },
                messages,
                messages as f64 / end_to_end(step).max(1e-9),
            )
        }
        None => Figure::rate("chat: sustained msg/s (no step kept up)", 0, 1.0),
    }
    .against(&raw);
    let chat_rate = chat.per_second;
    let ratio = chat.ratio_to_baseline.unwrap_or(0.0);
    report.figures = vec![connected, core, raw, chat];
    report.conditional_target(
        "chat ≥ 20,000 msg/s sustained",
        format!("{chat_rate:.0} msg/s"),
        super::behind(sustained),
        chat_rate >= 20_000.0,
    );
    match at_10k {
        Some((p99, kept_up)) => report.conditional_target(
            "chat p99 send→deliver ≤ 20 ms at 10,000 msg/s",
            format!("{p99:.1} ms"),
            super::behind(kept_up),
            p99 <= 20.0,
        ),
        None => report.target(
            "chat p99 send→deliver ≤ 20 ms at 10,000 msg/s",
            "not run at 10,000/s",
            false,
        ),
    }
    report.conditional_target(
        "chat ≥ 0.5 × raw JetStream append",
        format!("{ratio:.2} ×"),
        super::behind(sustained),
        ratio >= 0.5,
    );
    report.add_run(run);
    Ok(report)
}
