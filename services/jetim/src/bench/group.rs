//! `jetim bench group`: groups whose members all hold connections; a few members of each
//! send, every member receives.

use std::time::Duration;

use jetim_common::config::Config;
use jetim_messaging::conversation::{SessionType, chat_conversation_id};
use serde_json::json;

use super::load::{self, Stack};
use super::session::{self, Conversations, LoadShape, Plan, Target};
use super::{Figure, Output, Report, baseline};

#[derive(Debug, Clone, clap::Args)]
pub(crate) struct GroupArgs {
    /// Groups.
    #[arg(long, default_value_t = 10)]
    groups: usize,
    /// Members of each group, each on its own connection.
    #[arg(long, default_value_t = 200)]
    members: usize,
    /// Members of each group who send.
    #[arg(long, default_value_t = 5)]
    senders: usize,
    /// Messages a second, all groups together (deliveries are this × members − 1).
    #[arg(long, default_value_t = 1_000.0)]
    rate: f64,
    /// Seconds at the rate.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// Seconds of load at the rate before the measured ones.
    #[arg(long, default_value_t = 2)]
    ramp_seconds: u64,
    /// Bytes of text per message.
    #[arg(long, default_value_t = 100)]
    payload: usize,
    /// Messages for the core NATS baseline.
    #[arg(long, default_value_t = 200_000)]
    baseline_messages: u64,
    #[command(flatten)]
    connecting: load::Connecting,
    #[command(flatten)]
    cpu: super::cpu::CpuArgs,
    #[command(flatten)]
    pub(crate) output: Output,
}

pub(crate) async fn run(
    config: &Config,
    client: &async_nats::Client,
    jetstream: &async_nats::jetstream::Context,
    args: GroupArgs,
) -> anyhow::Result<Report> {
    let mut report = Report::new(
        "group",
        json!({
            "groups": args.groups,
            "members": args.members,
            "senders_per_group": args.senders,
            "rate": args.rate,
            "seconds": args.seconds,
            "ramp_seconds": args.ramp_seconds,
            "payload_bytes": args.payload,
            "sdk": args.connecting.sdk.name(),
        }),
    );
    let (groups, members) = (args.groups.max(1), args.members.max(2));
    let senders = args.senders.clamp(1, members);
    let stack = Stack::open(config, jetstream, args.connecting.sdk).await?;

    let body = baseline::event_body(args.payload)?;
    let core = baseline::core_publish(client, body, args.baseline_messages, groups).await?;

    let tag = load::run_tag();
    let user = |group: usize, member: usize| format!("b{tag}g{group}m{member}");
    let group_id = |group: usize| format!("b{tag}g{group}");
    let users: Vec<String> = (0..groups)
        .flat_map(|group| (0..members).map(move |member| (group, member)))
        .map(|(group, member)| user(group, member))
        .collect();
    eprintln!("registering {} users", users.len());
    stack.register(&users).await?;
    eprintln!("creating {groups} groups of {members}");
    for group in 0..groups {
        stack
            .post(
                "/group/create_group",
                json!({
                    "ownerUserID": user(group, 0),
                    "memberUserIDs": (1..members).map(|member| user(group, member)).collect::<Vec<_>>(),
                    "adminUserIDs": [],
                    "groupInfo": {"groupID": group_id(group), "groupName": group_id(group), "groupType": 2},
                }),
            )
            .await?;
    }
    // Pushes fan out to the members the read model knows; wait until it knows them all.
    let last = group_id(groups - 1);
    let mut known = 0;
    for _ in 0..600 {
        let page = stack
            .post(
                "/group/get_group_member_list",
                json!({"groupID": last, "pagination": {"pageNumber": 1, "showNumber": 1}}),
            )
            .await?;
        known = page["total"].as_u64().unwrap_or(0);
        if known == members as u64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::ensure!(
        known == members as u64,
        "group {last} shows {known} of {members} members after 60 s"
    );

    let (sockets, connected) = stack.connect_all(&users, &args.connecting).await?;
    let plans: Vec<Plan> = users
        .iter()
        .enumerate()
        .map(|(index, user)| {
            let (group, member) = (index / members, index % members);
            let id = group_id(group);
            Plan {
                index: u32::try_from(index).unwrap_or(u32::MAX),
                user: user.clone(),
                target: Target {
                    recv_id: String::new(),
                    conversation_id: chat_conversation_id(SessionType::Group, user, "", &id),
                    group_id: id,
                    session_type: 3,
                },
                conversation: group,
                sender: (member < senders).then_some(group * senders + member),
                verifies: member == 0,
            }
        })
        .collect();
    let conversations = Conversations {
        members: (0..groups)
            .map(|group| {
                (0..members)
                    .map(|member| u32::try_from(group * members + member).unwrap_or(u32::MAX))
                    .collect()
            })
            .collect(),
    };
    let shape = LoadShape {
        rates: vec![args.rate],
        step: Duration::from_secs(args.seconds.max(1)),
        ramp: Duration::from_secs(args.ramp_seconds),
        p99_bound_ms: None,
        stop_when_behind: false,
    };
    let run = session::run(
        plans,
        sockets,
        &conversations,
        shape,
        args.payload,
        args.connecting.sdk,
        &args.cpu.watched,
    )
    .await?;
    let step = run.steps.first();
    // Over the step, or until its last delivery when that came later.
    let deliveries = step
        .map_or(Figure::rate("group: deliveries/s", 0, 1.0), |step| {
            Figure::rate(
                "group: deliveries/s",
                step.delivered,
                step.delivered as f64 / step.delivered_per_second.max(1e-9),
            )
        })
        .against(&core);
    let messages = step.map_or(Figure::rate("group: messages/s", 0, 1.0), |step| {
        Figure::rate(
            "group: messages/s (acked)",
            step.acked,
            step.acked as f64 / step.acked_per_second.max(1e-9),
        )
    });
    let rate = deliveries.per_second;
    let kept_up = run.passed.first().copied().unwrap_or(false);
    report.figures = vec![connected, core, messages, deliveries];
    report.conditional_target(
        format!("group ≥ 200,000 deliveries/s ({members}-member groups)"),
        format!("{rate:.0} deliveries/s"),
        super::behind(kept_up),
        rate >= 200_000.0,
    );
    report.add_run(run);
    Ok(report)
}
