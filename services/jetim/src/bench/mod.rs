//! `jetim bench …`: load scenarios that print their figures, each next to a baseline measured
//! in the same run. Run them against a throwaway stack (`tests/bench.sh` starts one): they
//! write to the configured streams and database.
//!
//! - `rebuild.rs`: fill the log, rebuild the conversations read model.
//! - `chat.rs`, `group.rs`, `connect.rs`: a running jetim under load from simulated OpenIM
//!   clients (`load.rs` speaks the gateway protocol, `session.rs` runs the users and checks
//!   what arrived, `record.rs` keeps the latency histograms).
//! - `baseline.rs`: the same payloads straight through NATS, for the ratios.
//! - `plot.rs`: `--plot FILE.svg`.

mod baseline;
mod chat;
mod connect;
mod cpu;
mod group;
mod load;
mod plot;
mod rebuild;
mod record;
mod session;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::Subcommand;
use jetim_common::config::Config;
use serde::Serialize;

#[derive(Debug, Subcommand)]
pub(crate) enum BenchCommand {
    /// Fills the log with messages, then rebuilds the conversations read model (messages,
    /// conversation settings, groups) from it: events per second, against reading the same
    /// events with no projection (the ceiling).
    Rebuild {
        /// Messages to append before the rebuild.
        #[arg(long, default_value_t = 100_000)]
        events: u64,
        /// Single chats they are spread over.
        #[arg(long, default_value_t = 1_000)]
        conversations: u64,
        /// Bytes of text per message.
        #[arg(long, default_value_t = 100)]
        payload: usize,
        /// Events per batch in the rebuild (as `jetim ops rebuild --batch`).
        #[arg(long, default_value_t = jetim_readmodel::rebuild::Options::DEFAULT.batch_size)]
        batch: usize,
        /// Appends in flight while filling.
        #[arg(long, default_value_t = 64)]
        concurrency: u64,
        #[command(flatten)]
        output: Output,
    },
    /// Pairs of users in single chats, each on its own gateway connection, sending to each
    /// other at a fixed rate or a rising one: msg/s, send→ack and send→deliver latency, and
    /// an accounting of every message. Needs a running jetim (`tests/bench.sh` starts one).
    Chat(chat::ChatArgs),
    /// Groups whose members all hold connections; some members send: deliveries/s and
    /// send→deliver latency. Needs a running jetim.
    Group(group::GroupArgs),
    /// Idle connections: how fast they are accepted and what each costs the server in
    /// memory. Needs a running jetim, and its process ID for the memory.
    Connect(connect::ConnectArgs),
    /// One load process of `connect --workers`; `connect` starts these itself.
    #[command(hide = true)]
    ConnectWorker(connect::WorkerArgs),
}

/// Where a report goes besides the terminal.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct Output {
    /// Write the report as JSON to this file too.
    #[arg(long)]
    report: Option<PathBuf>,
    /// Draw latency over time and the throughput curve into this SVG file (chat, group).
    #[arg(long)]
    plot: Option<PathBuf>,
}

/// One measured rate.
#[derive(Debug, Serialize)]
struct Figure {
    name: &'static str,
    events: u64,
    seconds: f64,
    per_second: f64,
    /// This figure as a share of its baseline's rate, where it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    ratio_to_baseline: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    baseline: Option<&'static str>,
}

impl Figure {
    fn new(name: &'static str, events: u64, elapsed: Duration) -> Self {
        Self::rate(name, events, elapsed.as_secs_f64())
    }

    fn rate(name: &'static str, events: u64, seconds: f64) -> Self {
        Self {
            name,
            events,
            seconds,
            per_second: events as f64 / seconds.max(1e-9),
            ratio_to_baseline: None,
            baseline: None,
        }
    }

    fn against(mut self, baseline: &Figure) -> Self {
        self.ratio_to_baseline = Some(self.per_second / baseline.per_second.max(1e-9));
        self.baseline = Some(baseline.name);
        self
    }
}

/// How long one part of a run took (the rebuild's phases).
#[derive(Debug, Serialize)]
struct PhaseTime {
    name: &'static str,
    seconds: f64,
}

impl PhaseTime {
    fn new(name: &'static str, took: Duration) -> Self {
        Self {
            name,
            seconds: took.as_secs_f64(),
        }
    }
}

/// What a rebuild's fill waited for besides its own work (`jetim_readmodel::rebuild::Waits`):
/// whichever is larger paced it.
#[derive(Debug, Serialize)]
struct FillWaits {
    /// How long the fill took.
    seconds: f64,
    /// Waiting for events from the log.
    log_seconds: f64,
    /// Waiting for the lanes to apply what they held.
    lanes_seconds: f64,
}

/// Why a figure of a load step counts for no target: the step fell behind.
fn behind(kept_up: bool) -> Option<&'static str> {
    (!kept_up).then_some("fell behind")
}

/// A target from the performance issue, and whether this run met it.
#[derive(Debug, Serialize)]
struct Target {
    what: String,
    measured: String,
    met: bool,
}

/// One rate step of a load, as reported.
#[derive(Debug, Serialize)]
struct StepRow {
    #[serde(flatten)]
    result: record::StepResult,
    kept_up: bool,
}

/// Server memory for idle connections.
#[derive(Debug, Serialize)]
struct Memory {
    connections: u64,
    server_rss_before_bytes: u64,
    server_rss_after_bytes: u64,
    server_bytes_per_connection: f64,
    client_bytes_per_connection: f64,
    /// Each server process's resident set before and after, when there are several.
    processes: Vec<ProcessMemory>,
}

/// One server process's resident set before and after the connections.
#[derive(Debug, Serialize)]
struct ProcessMemory {
    pid: u32,
    rss_before_bytes: u64,
    rss_after_bytes: u64,
}

#[derive(Debug, Serialize)]
struct Report {
    scenario: &'static str,
    parameters: serde_json::Value,
    cores: usize,
    figures: Vec<Figure>,
    /// Where the time of the measured run went, part by part (rebuild).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    phases: Vec<PhaseTime>,
    /// What the rebuild's fill waited for.
    #[serde(skip_serializing_if = "Option::is_none")]
    fill_waits: Option<FillWaits>,
    /// What the rebuilt read model holds of the run's conversations.
    #[serde(skip_serializing_if = "Option::is_none")]
    rebuilt: Option<rebuild::Rebuilt>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    latencies: Vec<record::Summary>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    steps: Vec<StepRow>,
    #[serde(skip_serializing_if = "Option::is_none")]
    accounting: Option<session::Accounting>,
    #[serde(skip_serializing_if = "Option::is_none")]
    memory: Option<Memory>,
    /// The processes' CPU time while the load ran.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    cpu: Vec<cpu::ProcessCpu>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    targets: Vec<Target>,
    /// Per second of the load: counts and send→deliver latency.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    seconds: Vec<record::Second>,
}

impl Report {
    fn new(scenario: &'static str, parameters: serde_json::Value) -> Self {
        Self {
            scenario,
            parameters,
            cores: std::thread::available_parallelism().map_or(1, usize::from),
            figures: Vec::new(),
            phases: Vec::new(),
            fill_waits: None,
            rebuilt: None,
            latencies: Vec::new(),
            steps: Vec::new(),
            accounting: None,
            memory: None,
            cpu: Vec::new(),
            targets: Vec::new(),
            seconds: Vec::new(),
        }
    }

    /// Adds what a load run produced: its steps, latencies, accounting (and its target)
    /// and series.
    fn add_run(&mut self, run: session::RunResult) {
        let accounting = &run.accounting;
        self.target(
            "lost = 0, duplicated = 0, pullable without gaps",
            format!(
                "lost {}, duplicated {}, missing {}, gaps {}",
                accounting.lost,
                accounting.duplicated,
                accounting.missing_from_pull,
                accounting.seq_gaps
            ),
            accounting.clean(),
        );
        let (ack, deliver) = run.overall;
        self.latencies = vec![ack, deliver];
        self.steps = run
            .steps
            .into_iter()
            .zip(run.passed)
            .map(|(result, kept_up)| StepRow { result, kept_up })
            .collect();
        self.accounting = Some(run.accounting);
        self.seconds = run.seconds;
        self.cpu = run.cpu;
    }

    fn target(&mut self, what: impl Into<String>, measured: impl Into<String>, met: bool) {
        self.targets.push(Target {
            what: what.into(),
            measured: measured.into(),
            met,
        });
    }

    /// A target on a figure that counts only when it holds under some condition: a figure of
    /// a load step only if the step kept up (a load the server falls behind on is still
    /// served at some rate, but not one it sustains), a rebuild's rate only if what it
    /// rebuilt is whole. `void` says why the figure does not count, when it does not.
    fn conditional_target(
        &mut self,
        what: impl Into<String>,
        measured: impl Into<String>,
        void: Option<&str>,
        reached: bool,
    ) {
        let measured = measured.into();
        match void {
            None => self.target(what, measured, reached),
            Some(why) => self.target(what, format!("{measured}, {why}"), false),
        }
    }
}

pub(crate) async fn run(config: &Config, command: BenchCommand) -> anyhow::Result<()> {
    let (client, jetstream) = jetim_common::nats::connect(&config.nats).await?;
    let (report, output) = match command {
        BenchCommand::Rebuild {
            events,
            conversations,
            payload,
            batch,
            concurrency,
            output,
        } => {
            let mut report = Report::new(
                "rebuild",
                serde_json::json!({
                    "events": events,
                    "conversations": conversations,
                    "payload_bytes": payload,
                    "batch": batch,
                    "concurrency": concurrency,
                }),
            );
            let measured = rebuild::rebuild(
                config,
                &jetstream,
                events,
                conversations.max(1),
                payload,
                batch,
                concurrency.max(1),
            )
            .await?;
            report.figures = measured.figures;
            report.phases = measured.phases;
            report.fill_waits = Some(measured.fill_waits);
            let rate = report
                .figures
                .last()
                .map_or(0.0, |figure| figure.per_second);
            let rebuilt = measured.rebuilt;
            let whole = rebuilt.whole();
            report.conditional_target(
                "rebuild ≥ 100,000 events/s",
                format!("{rate:.0} events/s"),
                (!whole).then_some("the rebuilt read model is not whole"),
                rate >= 100_000.0,
            );
            report.target(
                "the rebuilt read model holds every message, without gaps",
                format!(
                    "{} of {} messages, {} broken",
                    rebuilt.messages, rebuilt.appended, rebuilt.broken_conversations
                ),
                whole,
            );
            report.rebuilt = Some(rebuilt);
            (report, output)
        }
        BenchCommand::Chat(args) => {
            let output = args.output.clone();
            (chat::run(config, &client, &jetstream, args).await?, output)
        }
        BenchCommand::Group(args) => {
            let output = args.output.clone();
            (group::run(config, &client, &jetstream, args).await?, output)
        }
        BenchCommand::Connect(args) => {
            let output = args.output.clone();
            (connect::run(config, &jetstream, args).await?, output)
        }
        BenchCommand::ConnectWorker(args) => return connect::work(config, &jetstream, args).await,
    };
    print!("{}", render(&report));
    if let Some(path) = &output.report {
        std::fs::write(path, serde_json::to_vec_pretty(&report)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(path) = &output.plot {
        plot::draw(&report, path).with_context(|| format!("drawing {}", path.display()))?;
    }
    Ok(())
}

fn render(report: &Report) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} on {} cores: {}",
        report.scenario, report.cores, report.parameters
    );
    let _ = writeln!(
        out,
        "{:<44} {:>10} {:>9} {:>12} {:>10}",
        "FIGURE", "EVENTS", "SECONDS", "EVENTS/S", "RATIO"
    );
    for figure in &report.figures {
        let ratio = figure
            .ratio_to_baseline
            .map_or_else(|| "-".to_owned(), |ratio| format!("{ratio:.2}"));
        let _ = writeln!(
            out,
            "{:<44} {:>10} {:>9.2} {:>12.0} {:>10}",
            figure.name, figure.events, figure.seconds, figure.per_second, ratio
        );
    }
    if !report.phases.is_empty() {
        let total: f64 = report.phases.iter().map(|phase| phase.seconds).sum();
        let parts = report
            .phases
            .iter()
            .map(|phase| (phase.name, phase.seconds));
        write_shares(&mut out, "WHERE THE TIME WENT", parts, total);
    }
    if let Some(waits) = &report.fill_waits {
        let parts = [
            ("events from the log (NATS)", waits.log_seconds),
            ("the lanes (applying to Postgres)", waits.lanes_seconds),
        ];
        write_shares(
            &mut out,
            "THE FILL WAITED FOR (SHARE OF THE FILL)",
            parts.into_iter(),
            waits.seconds,
        );
    }
    if let Some(rebuilt) = &report.rebuilt {
        let _ = writeln!(
            out,
            "\nchecked after the switch: messages_v1 holds {} messages in {} of the run's {} conversations ({} appended); {} conversations with a gap or a wrong max seq",
            rebuilt.messages,
            rebuilt.conversations,
            rebuilt.conversations_filled,
            rebuilt.appended,
            rebuilt.broken_conversations
        );
    }
    if !report.latencies.is_empty() {
        let _ = writeln!(
            out,
            "\n{:<16} {:>10} {:>9} {:>9} {:>9} {:>9}",
            "LATENCY (ms)", "COUNT", "P50", "P99", "P99.9", "MAX"
        );
        for summary in &report.latencies {
            let _ = writeln!(
                out,
                "{:<16} {:>10} {:>9.2} {:>9.2} {:>9.2} {:>9.2}",
                summary.name,
                summary.count,
                summary.p50_ms,
                summary.p99_ms,
                summary.p999_ms,
                summary.max_ms
            );
        }
    }
    if !report.steps.is_empty() {
        let _ = writeln!(
            out,
            "\n{:>10} {:>10} {:>12} {:>10} {:>10} {:>10} {:>8}",
            "OFFERED/S", "ACKED/S", "DELIVERED/S", "ACK P99", "DLV P50", "DLV P99", "KEPT UP"
        );
        for step in &report.steps {
            let result = &step.result;
            let _ = writeln!(
                out,
                "{:>10.0} {:>10.0} {:>12.0} {:>10.2} {:>10.2} {:>10.2} {:>8}",
                result.offered_per_second,
                result.acked_per_second,
                result.delivered_per_second,
                result.ack.p99_ms,
                result.deliver.p50_ms,
                result.deliver.p99_ms,
                if step.kept_up { "yes" } else { "no" }
            );
        }
    }
    if let Some(accounting) = &report.accounting {
        let _ = writeln!(
            out,
            "\naccounting: sent {}, acked {}, refused {}, unanswered {}; deliveries expected {}, once {}, lost {}, duplicated {}, unacked but delivered {}; pulled {} conversations: {} acked messages missing, {} seq gaps",
            accounting.sent,
            accounting.acked,
            accounting.refused,
            accounting.unanswered,
            accounting.expected_deliveries,
            accounting.delivered_once,
            accounting.lost,
            accounting.duplicated,
            accounting.delivered_unacked,
            accounting.pulled_conversations,
            accounting.missing_from_pull,
            accounting.seq_gaps
        );
        if accounting.pulls_retried > 0 {
            let _ = writeln!(
                out,
                "  {} requests of the check (1001, 1002) were answered with 500 (the server shedding the burst) and served when tried again",
                accounting.pulls_retried
            );
        }
        for error in &accounting.errors {
            let _ = writeln!(out, "  error: {error}");
        }
    }
    if !report.cpu.is_empty() {
        let _ = writeln!(
            out,
            "\n{:<24} {:>9} {:>10} {:>12} {:>10}",
            "CPU WHILE LOADED", "PROCESSES", "MS/S", "µS/MESSAGE", "IN KERNEL"
        );
        for process in &report.cpu {
            let per_message = process
                .us_per_message
                .map_or_else(|| "-".to_owned(), |us| format!("{us:.1}"));
            let _ = writeln!(
                out,
                "{:<24} {:>9} {:>10.0} {:>12} {:>9.0}%",
                process.name,
                process.processes,
                process.ms_per_second,
                per_message,
                100.0 * process.kernel_ms_per_second / process.ms_per_second.max(1e-9)
            );
        }
    }
    if let Some(memory) = &report.memory {
        let _ = writeln!(
            out,
            "\nmemory: {} idle connections; server RSS {} → {} bytes, {:.0} bytes a connection (the load client: {:.0})",
            memory.connections,
            memory.server_rss_before_bytes,
            memory.server_rss_after_bytes,
            memory.server_bytes_per_connection,
            memory.client_bytes_per_connection
        );
        for process in &memory.processes {
            let _ = writeln!(
                out,
                "  process {}: RSS {} → {} bytes",
                process.pid, process.rss_before_bytes, process.rss_after_bytes
            );
        }
    }
    if !report.targets.is_empty() {
        let _ = writeln!(out, "\ntargets:");
        for target in &report.targets {
            let _ = writeln!(
                out,
                "  {:<60} {:<34} {}",
                target.what,
                target.measured,
                if target.met { "met" } else { "MISSED" }
            );
        }
    }
    out
}

/// A table of `parts` of `whole` seconds, each with its seconds and its share.
fn write_shares<'a>(
    out: &mut String,
    title: &str,
    parts: impl Iterator<Item = (&'a str, f64)>,
    whole: f64,
) {
    use std::fmt::Write as _;
    let _ = writeln!(out, "\n{title:<44} {:>9} {:>7}", "SECONDS", "SHARE");
    for (name, seconds) in parts {
        let _ = writeln!(
            out,
            "{name:<44} {seconds:>9.3} {:>6.1}%",
            100.0 * seconds / whole.max(1e-9)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_prints_each_figure_with_its_ratio_to_its_baseline() {
        let baseline = Figure::new("replay", 1000, Duration::from_millis(10));
        let figure = Figure::new("rebuild", 1000, Duration::from_millis(40)).against(&baseline);
        assert_eq!(figure.ratio_to_baseline, Some(0.25));
        let mut report = Report::new("rebuild", serde_json::json!({"events": 1000}));
        report.cores = 2;
        report.figures = vec![baseline, figure];
        report.target("rebuild ≥ 100,000 events/s", "25000 events/s", false);
        let table = render(&report);
        assert!(
            table.starts_with("rebuild on 2 cores: {\"events\":1000}\n"),
            "{table}"
        );
        let rebuild_line = table
            .lines()
            .find(|line| line.starts_with("rebuild   "))
            .unwrap();
        assert!(rebuild_line.ends_with("25000       0.25"), "{table}");
        assert!(table.lines().last().unwrap().ends_with("MISSED"), "{table}");
    }

    #[test]
    fn a_figure_counts_for_its_target_only_when_its_condition_holds() {
        let mut report = Report::new("group", serde_json::json!({}));
        let what = "group ≥ 200,000 deliveries/s";
        report.conditional_target(what, "288450 deliveries/s", behind(true), true);
        report.conditional_target(what, "228918 deliveries/s", behind(false), true);
        report.conditional_target(what, "150000 deliveries/s", behind(true), false);
        report.conditional_target(what, "120000 events/s", Some("not whole"), true);
        let judged: Vec<(&str, bool)> = report
            .targets
            .iter()
            .map(|target| (target.measured.as_str(), target.met))
            .collect();
        assert_eq!(
            judged,
            [
                ("288450 deliveries/s", true),
                ("228918 deliveries/s, fell behind", false),
                ("150000 deliveries/s", false),
                ("120000 events/s, not whole", false),
            ]
        );
    }
}
