//! `jetim bench connect`: many idle connections; how fast the gateway takes them and what
//! each costs it in memory (the server's resident set before and after, over the count).
//! With `--echo-bytes`, each connection is first sent one long frame, as a client is after
//! its first sync, and with `--unanswered-bytes` it first sends one: what it costs to hold a
//! connection that has had one. Held in this process (no `--workers`), the echoes are timed,
//! and the CPU time the servers and the load client spent until the last one arrived is
//! reported per echo: what sending a long frame costs.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use futures::{SinkExt as _, StreamExt as _};
use jetim_common::config::Config;
use serde_json::json;
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _};
use tokio_tungstenite::tungstenite::Message;

use super::cpu::{CpuWatch, ProcessCpu, Watched};
use super::load::{self, Stack};
use super::{Figure, Memory, Output, ProcessMemory, Report};

#[derive(Debug, Clone, clap::Args)]
pub(crate) struct ConnectArgs {
    /// Idle connections to open, one user each.
    #[arg(long, default_value_t = 10_000)]
    connections: usize,
    /// The jetim processes whose memory is measured (`/proc/<pid>/status`), comma-separated:
    /// every process holding connections.
    #[arg(long, value_delimiter = ',', required = true)]
    server_pid: Vec<u32>,
    /// The gateways to connect to, comma-separated; each gets an equal share. Default: the
    /// configured one.
    #[arg(long, value_delimiter = ',')]
    gateway: Vec<SocketAddr>,
    /// Load processes holding the connections, each for one gateway in turn (a process can
    /// hold only as many sockets as its open-file limit); 0 holds them in this process.
    #[arg(long, default_value_t = 0)]
    workers: usize,
    /// Seconds the connections stay open, idle, before the memory is read again.
    #[arg(long, default_value_t = 10)]
    hold_seconds: u64,
    #[command(flatten)]
    long: LongFrames,
    #[command(flatten)]
    connecting: load::Connecting,
    #[command(flatten)]
    pub(crate) output: Output,
}

/// One load process of a `connect` run with `--workers`: started by the run, not by hand.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct WorkerArgs {
    /// The run's user tag.
    #[arg(long)]
    tag: String,
    /// The first user's number.
    #[arg(long)]
    first: usize,
    /// How many users, from `first` on.
    #[arg(long)]
    count: usize,
    /// The gateway to connect to.
    #[arg(long)]
    gateway: SocketAddr,
    /// The local address the connections come from.
    #[arg(long)]
    source: IpAddr,
    /// Connections opened at once.
    #[arg(long, default_value_t = 64)]
    connect_concurrency: usize,
    /// The client the connections speak as.
    #[arg(long, value_enum, default_value_t = load::Sdk::Js)]
    sdk: load::Sdk,
    #[command(flatten)]
    long: LongFrames,
}

/// The long frames each connection sends once connected; a run passes them on to its
/// workers.
#[derive(Clone, Copy, Debug, clap::Args)]
struct LongFrames {
    /// Once connected, each connection sends a text ping with a body of this many bytes,
    /// which the gateway echoes in its pong: one long frame sent to every connection before
    /// the hold, as a first sync's pull reply would be. 0: none. At most the gateway's
    /// `max_frame_bytes` less 30.
    #[arg(long, default_value_t = 0)]
    echo_bytes: usize,
    /// How many times each connection sends its `--echo-bytes` ping, each after the last
    /// one's pong. From two on, the echoes after the first round are what the run times:
    /// the first grows every connection's buffers.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    echo_rounds: u32,
    /// Once connected, each connection sends a text pong with a body of this many bytes,
    /// which the gateway reads and does not answer: one long frame from every client. 0:
    /// none.
    #[arg(long, default_value_t = 0)]
    unanswered_bytes: usize,
}

impl Default for LongFrames {
    fn default() -> Self {
        Self {
            echo_bytes: 0,
            echo_rounds: 1,
            unanswered_bytes: 0,
        }
    }
}

impl LongFrames {
    /// The pong the gateway ignores, if any.
    fn unanswered(self) -> Option<String> {
        long_text("pong", self.unanswered_bytes)
    }

    /// The ping the gateway echoes, if any.
    fn ping(self) -> Option<String> {
        long_text("ping", self.echo_bytes)
    }

    /// Echoes every connection gets.
    fn echoes_each(self) -> usize {
        if self.echo_bytes == 0 {
            0
        } else {
            self.echo_rounds as usize
        }
    }
}

/// A text ping or pong with a body of `bytes` bytes; none for 0.
fn long_text(kind: &str, bytes: usize) -> Option<String> {
    (bytes > 0).then(|| json!({"type": kind, "body": "x".repeat(bytes)}).to_string())
}

/// A process's resident set, in bytes.
fn rss_bytes(pid: &str) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    parse_rss(&status).with_context(|| format!("no VmRSS in /proc/{pid}/status"))
}

fn parse_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kilobytes: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kilobytes * 1024)
}

/// The resident set of each server.
fn servers_rss(pids: &[u32]) -> anyhow::Result<Vec<u64>> {
    pids.iter().map(|pid| rss_bytes(&pid.to_string())).collect()
}

fn user(tag: &str, number: usize) -> String {
    format!("b{tag}k{number}")
}

/// The connections held, and how many of them have had their echo.
struct Holders {
    tasks: Vec<tokio::task::JoinHandle<()>>,
    echoed: Arc<AtomicUsize>,
}

/// Spawns a task per socket that sends the `long` frames (the ping again on each echo, for
/// its rounds), then reads the socket until the server closes it (the server's pings get
/// their pongs); a finished task is a connection the server dropped.
fn hold(sockets: Vec<load::Socket>, long: LongFrames) -> Holders {
    let unanswered: Option<Arc<str>> = long.unanswered().map(Into::into);
    let ping: Option<Arc<str>> = long.ping().map(Into::into);
    let echoed = Arc::new(AtomicUsize::new(0));
    let tasks = sockets
        .into_iter()
        .map(|mut socket| {
            let (unanswered, ping) = (unanswered.clone(), ping.clone());
            let echoed = Arc::clone(&echoed);
            tokio::spawn(async move {
                let text = |frame: &Arc<str>| Message::Text(frame.as_ref().into());
                for frame in unanswered.iter().chain(&ping) {
                    if socket.send(text(frame)).await.is_err() {
                        return;
                    }
                }
                let mut echoes = 0;
                while let Some(Ok(frame)) = socket.next().await {
                    if long.echo_bytes > 0
                        && matches!(&frame, Message::Text(text) if text.len() > long.echo_bytes)
                    {
                        echoed.fetch_add(1, Ordering::Relaxed);
                        echoes += 1;
                        if let Some(ping) = ping.as_ref().filter(|_| echoes < long.echo_rounds)
                            && socket.send(text(ping)).await.is_err()
                        {
                            return;
                        }
                    }
                }
            })
        })
        .collect();
    Holders { tasks, echoed }
}

impl Holders {
    /// How many of the connections the server has not closed.
    fn still_open(&self) -> usize {
        self.tasks.iter().filter(|task| !task.is_finished()).count()
    }

    fn echoed(&self) -> usize {
        self.echoed.load(Ordering::Relaxed)
    }

    fn close(&self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// What the load side measured: the connect rate, the connections still open after the
/// hold, and its own memory growth.
struct Held {
    connected: Figure,
    open: usize,
    /// The echoes of `--echo-bytes` that came, over every round.
    echoed: usize,
    /// With the connections held in this process, what their echoes took.
    echoes: Option<Echoes>,
    client_bytes: u64,
    /// Each server's resident set while the connections were held.
    servers_after: Vec<u64>,
}

pub(crate) async fn run(
    config: &Config,
    jetstream: &async_nats::jetstream::Context,
    args: ConnectArgs,
) -> anyhow::Result<Report> {
    let mut report = Report::new(
        "connect",
        json!({
            "connections": args.connections,
            "gateways": args.gateway.len().max(1),
            "workers": args.workers,
            "hold_seconds": args.hold_seconds,
            "echo_bytes": args.long.echo_bytes,
            "echo_rounds": args.long.echo_rounds,
            "unanswered_bytes": args.long.unanswered_bytes,
            "connect_concurrency": args.connecting.connect_concurrency,
            "per_address": args.connecting.per_address,
            "sdk": args.connecting.sdk.name(),
        }),
    );
    let stack = Stack::open(config, jetstream, args.connecting.sdk).await?;
    let tag = load::run_tag();
    let count = args.connections.max(1);
    let users: Vec<String> = (0..count).map(|i| user(&tag, i)).collect();
    eprintln!("registering {} users", users.len());
    stack.register(&users).await?;
    // Let the server settle after registering before the first reading.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before_each = servers_rss(&args.server_pid)?;
    let held = if args.workers == 0 {
        hold_here(stack, &users, &args).await?
    } else {
        hold_in_workers(&tag, count, &args, stack.gateway).await?
    };
    let after_each = held.servers_after;
    let (server_before, server_after) = (
        before_each.iter().sum::<u64>(),
        after_each.iter().sum::<u64>(),
    );
    let processes = if args.server_pid.len() > 1 {
        args.server_pid
            .iter()
            .zip(before_each.iter().zip(&after_each))
            .map(|(pid, (before, after))| ProcessMemory {
                pid: *pid,
                rss_before_bytes: *before,
                rss_after_bytes: *after,
            })
            .collect()
    } else {
        Vec::new()
    };
    anyhow::ensure!(
        held.open == count,
        "{} connections were closed by the server while idle",
        count - held.open
    );
    let echoes = count * args.long.echoes_each();
    anyhow::ensure!(
        held.echoed == echoes,
        "{} of the {echoes} pongs of {} bytes did not come",
        echoes.saturating_sub(held.echoed),
        args.long.echo_bytes
    );
    let count = count as u64;
    let per_connection = server_after.saturating_sub(server_before) as f64 / count as f64;
    let rate = held.connected.per_second;
    report.figures = vec![held.connected];
    if let Some(echoes) = held.echoes {
        report.figures.push(echoes.figure);
        report.cpu = echoes.cpu;
    }
    report.memory = Some(Memory {
        connections: count,
        server_rss_before_bytes: server_before,
        server_rss_after_bytes: server_after,
        server_bytes_per_connection: per_connection,
        client_bytes_per_connection: held.client_bytes as f64 / count as f64,
        processes,
    });
    report.target(
        "connect: ≤ 10 KB of server memory per idle connection",
        format!("{:.1} KB at {count} connections", per_connection / 1024.0),
        per_connection <= 10_240.0,
    );
    report.target(
        "connect: 50,000 idle sockets",
        format!(
            "{count} held by {} ({rate:.0}/s)",
            match args.server_pid.len() {
                1 => "one process".to_owned(),
                processes => format!("{processes} processes"),
            }
        ),
        count >= 50_000,
    );
    Ok(report)
}

/// The echoes of `--echo-bytes`: their rate, and the CPU time spent while they went.
struct Echoes {
    figure: Figure,
    cpu: Vec<ProcessCpu>,
}

/// Opens and holds every connection in this process, to the first gateway.
async fn hold_here(mut stack: Stack, users: &[String], args: &ConnectArgs) -> anyhow::Result<Held> {
    if let Some(gateway) = args.gateway.first() {
        stack.gateway = *gateway;
    }
    let client_before = rss_bytes("self")?;
    let (sockets, connected) = stack.connect_all(users, &args.connecting).await?;
    let holders = hold(sockets, args.long);
    let echoes = time_echoes(&holders, users.len(), args).await;
    eprintln!(
        "holding {} idle connections for {} s",
        holders.tasks.len(),
        args.hold_seconds
    );
    tokio::time::sleep(Duration::from_secs(args.hold_seconds)).await;
    let client_after = rss_bytes("self")?;
    let open = holders.still_open();
    // Read before the connections close: closing them costs the server memory of its own.
    let servers_after = servers_rss(&args.server_pid)?;
    holders.close();
    Ok(Held {
        connected,
        open,
        echoed: holders.echoed(),
        echoes,
        client_bytes: client_after.saturating_sub(client_before),
        servers_after,
    })
}

/// Times the echoes of `--echo-bytes` on `connections` connections, from when the ping went
/// out, or with rounds, from the end of the first round (which grows every connection's
/// buffers) to the end of the last, with the CPU the servers and the load client spent
/// meanwhile: what sending long frames costs. Waits up to a minute for each part.
async fn time_echoes(holders: &Holders, connections: usize, args: &ConnectArgs) -> Option<Echoes> {
    let total = connections * args.long.echoes_each();
    if total == 0 {
        return None;
    }
    let all_by = |count: usize| async move {
        let deadline = Instant::now() + Duration::from_secs(60);
        while holders.echoed() < count && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    let untimed = if total > connections { connections } else { 0 };
    all_by(untimed).await;
    let watch = CpuWatch::start(&[Watched::pids("jetim", &args.server_pid)]);
    let started = Instant::now();
    all_by(total).await;
    let echoed = holders.echoed().saturating_sub(untimed) as u64;
    Some(Echoes {
        figure: Figure::new("long frames echoed", echoed, started.elapsed()),
        cpu: watch.finish(echoed),
    })
}

/// A worker process and the lines it writes.
struct Worker {
    child: tokio::process::Child,
    input: tokio::process::ChildStdin,
    lines: tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
    number: usize,
}

impl Worker {
    async fn line(&mut self) -> anyhow::Result<serde_json::Value> {
        let line = self.lines.next_line().await?.with_context(|| {
            format!(
                "load process {} ended early (its errors are above)",
                self.number
            )
        })?;
        serde_json::from_str(&line)
            .with_context(|| format!("load process {} wrote {line:?}", self.number))
    }

    async fn tell(&mut self, word: &str) -> anyhow::Result<()> {
        self.input.write_all(format!("{word}\n").as_bytes()).await?;
        Ok(self.input.flush().await?)
    }
}

/// Splits the connections among `args.workers` processes, each for one gateway in turn;
/// they issue their tokens, then connect at the same moment, so the rate is the gateways'.
async fn hold_in_workers(
    tag: &str,
    count: usize,
    args: &ConnectArgs,
    configured: SocketAddr,
) -> anyhow::Result<Held> {
    let gateways = if args.gateway.is_empty() {
        vec![configured]
    } else {
        args.gateway.clone()
    };
    let program = std::env::current_exe().context("finding this program to start workers")?;
    let mut workers = Vec::with_capacity(args.workers);
    for number in 0..args.workers {
        let first = count * number / args.workers;
        let share = count * (number + 1) / args.workers - first;
        let mut child = tokio::process::Command::new(&program)
            .args(["bench", "connect-worker", "--tag", tag])
            .args(["--first", &first.to_string(), "--count", &share.to_string()])
            .args(["--gateway", &gateways[number % gateways.len()].to_string()])
            .args(["--source", &load::source_address(number, 1).to_string()])
            .args([
                "--connect-concurrency",
                &args.connecting.connect_concurrency.to_string(),
            ])
            .args(["--sdk", args.connecting.sdk.name()])
            .args(["--echo-bytes", &args.long.echo_bytes.to_string()])
            .args(["--echo-rounds", &args.long.echo_rounds.to_string()])
            .args([
                "--unanswered-bytes",
                &args.long.unanswered_bytes.to_string(),
            ])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context("starting a load process")?;
        let input = child.stdin.take().context("the worker's stdin")?;
        let output = child.stdout.take().context("the worker's stdout")?;
        workers.push(Worker {
            child,
            input,
            lines: tokio::io::BufReader::new(output).lines(),
            number,
        });
    }
    eprintln!("{} load processes are issuing tokens", workers.len());
    for worker in &mut workers {
        worker.line().await?;
    }
    eprintln!("opening {count} connections");
    let started = std::time::Instant::now();
    for worker in &mut workers {
        worker.tell("go").await?;
    }
    let mut client_bytes = 0;
    for worker in &mut workers {
        client_bytes += worker.line().await?["grew"].as_u64().unwrap_or(0);
    }
    let connected = Figure::new("connect (handshakes)", count as u64, started.elapsed());
    eprintln!(
        "holding {count} idle connections for {} s",
        args.hold_seconds
    );
    tokio::time::sleep(Duration::from_secs(args.hold_seconds)).await;
    let (mut open, mut echoed) = (0, 0);
    for worker in &mut workers {
        worker.tell("check").await?;
        let answer = worker.line().await?;
        let count = |key: &str| usize::try_from(answer[key].as_u64().unwrap_or(0)).unwrap_or(0);
        open += count("open");
        echoed += count("echoed");
        client_bytes += answer["grew"].as_u64().unwrap_or(0);
    }
    // Read before the workers end and the connections close.
    let servers_after = servers_rss(&args.server_pid)?;
    for mut worker in workers {
        drop(worker.input);
        let _ = worker.child.wait().await;
    }
    Ok(Held {
        connected,
        open,
        echoed,
        echoes: None,
        client_bytes,
        servers_after,
    })
}

/// `jetim bench connect-worker`: issues its users' tokens and says `{"ready":…}`; on `go`,
/// opens their connections and says how much its memory grew; on `check`, how many are
/// still open, how many had their echo, and how much more it grew; ends when its input
/// does.
pub(crate) async fn work(
    config: &Config,
    jetstream: &async_nats::jetstream::Context,
    args: WorkerArgs,
) -> anyhow::Result<()> {
    let mut stack = Stack::open(config, jetstream, args.sdk).await?;
    stack.gateway = args.gateway;
    let users: Vec<String> = (args.first..args.first + args.count)
        .map(|number| user(&args.tag, number))
        .collect();
    let tokens = stack.tokens(&users).await?;
    let mut commands = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    let say = |value: serde_json::Value| println!("{value}");
    say(json!({"ready": users.len()}));
    anyhow::ensure!(
        commands.next_line().await?.as_deref() == Some("go"),
        "expected go"
    );
    let before = rss_bytes("self")?;
    let sockets = load::in_parallel(
        users.iter().zip(&tokens),
        args.connect_concurrency,
        |(user, token)| stack.connect(user, token, Some(args.source)),
    )
    .await?;
    let holders = hold(sockets, args.long);
    let connected = rss_bytes("self")?;
    say(json!({"grew": connected.saturating_sub(before)}));
    while let Some(command) = commands.next_line().await? {
        if command == "check" {
            let now = rss_bytes("self")?;
            say(json!({
                "open": holders.still_open(),
                "echoed": holders.echoed(),
                "grew": now.saturating_sub(connected),
            }));
        }
    }
    holders.close();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_frames_are_a_pong_and_a_ping_of_the_lengths_asked() {
        let none = LongFrames::default();
        assert_eq!(
            (none.unanswered(), none.ping(), none.echoes_each()),
            (None, None, 0)
        );
        let long = LongFrames {
            echo_bytes: 3,
            echo_rounds: 4,
            unanswered_bytes: 2,
        };
        assert_eq!(
            long.unanswered().as_deref(),
            Some(r#"{"body":"xx","type":"pong"}"#)
        );
        assert_eq!(
            long.ping().as_deref(),
            Some(r#"{"body":"xxx","type":"ping"}"#)
        );
        assert_eq!(long.echoes_each(), 4);
        let rounds_without_a_ping = LongFrames {
            echo_bytes: 0,
            ..long
        };
        assert_eq!(rounds_without_a_ping.echoes_each(), 0);
    }

    #[test]
    fn the_resident_set_is_read_from_proc_status() {
        let status = "Name:\tjetim\nVmPeak:\t  900 kB\nVmRSS:\t   12345 kB\nThreads:\t3\n";
        assert_eq!(parse_rss(status), Some(12345 * 1024));
        assert_eq!(parse_rss("Name:\tx\n"), None);
        assert!(rss_bytes("self").unwrap() > 0);
    }
}
