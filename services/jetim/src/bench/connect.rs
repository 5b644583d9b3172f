//! `jetim bench connect`: many idle connections; how fast the gateway takes them and what
//! each costs it in memory (the server's resident set before and after, over the count).

use std::time::Duration;

use anyhow::Context as _;
use futures::StreamExt as _;
use jetim_common::config::Config;
use serde_json::json;

use super::load::{self, Stack};
use super::{Memory, Output, Report};

#[derive(Debug, Clone, clap::Args)]
pub(crate) struct ConnectArgs {
    /// Idle connections to open, one user each.
    #[arg(long, default_value_t = 10_000)]
    connections: usize,
    /// The jetim process whose memory is measured (`/proc/<pid>/status`).
    #[arg(long)]
    server_pid: u32,
    /// Seconds the connections stay open, idle, before the memory is read again.
    #[arg(long, default_value_t = 10)]
    hold_seconds: u64,
    #[command(flatten)]
    connecting: load::Connecting,
    #[command(flatten)]
    pub(crate) output: Output,
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

pub(crate) async fn run(
    config: &Config,
    jetstream: &async_nats::jetstream::Context,
    args: ConnectArgs,
) -> anyhow::Result<Report> {
    let mut report = Report::new(
        "connect",
        json!({
            "connections": args.connections,
            "hold_seconds": args.hold_seconds,
            "connect_concurrency": args.connecting.connect_concurrency,
            "per_address": args.connecting.per_address,
        }),
    );
    let server = args.server_pid.to_string();
    let stack = Stack::open(config, jetstream).await?;
    let tag = load::run_tag();
    let users: Vec<String> = (0..args.connections.max(1))
        .map(|i| format!("b{tag}k{i}"))
        .collect();
    eprintln!("registering {} users", users.len());
    stack.register(&users).await?;
    // Let the server settle after registering before the first reading.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (server_before, client_before) = (rss_bytes(&server)?, rss_bytes("self")?);
    let (sockets, connected) = stack.connect_all(&users, &args.connecting).await?;
    // Idle, but read: the server's pings get their pongs.
    let holders: Vec<_> = sockets
        .into_iter()
        .map(|mut socket| {
            tokio::spawn(async move {
                while let Some(Ok(_)) = socket.next().await {}
                "closed by the server"
            })
        })
        .collect();
    eprintln!(
        "holding {} idle connections for {} s",
        holders.len(),
        args.hold_seconds
    );
    tokio::time::sleep(Duration::from_secs(args.hold_seconds)).await;
    let (server_after, client_after) = (rss_bytes(&server)?, rss_bytes("self")?);
    let dropped = holders.iter().filter(|holder| holder.is_finished()).count();
    anyhow::ensure!(
        dropped == 0,
        "{dropped} connections were closed by the server while idle"
    );
    for holder in &holders {
        holder.abort();
    }
    let count = users.len() as u64;
    let per_connection = server_after.saturating_sub(server_before) as f64 / count as f64;
    let rate = connected.per_second;
    report.figures = vec![connected];
    report.memory = Some(Memory {
        connections: count,
        server_rss_before_bytes: server_before,
        server_rss_after_bytes: server_after,
        server_bytes_per_connection: per_connection,
        client_bytes_per_connection: client_after.saturating_sub(client_before) as f64
            / count as f64,
    });
    report.target(
        "connect: ≤ 10 KB of server memory per idle connection",
        format!("{:.1} KB at {count} connections", per_connection / 1024.0),
        per_connection <= 10_240.0,
    );
    report.target(
        "connect: 50,000 idle sockets",
        format!("{count} held ({rate:.0}/s)"),
        count >= 50_000,
    );
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_resident_set_is_read_from_proc_status() {
        let status = "Name:\tjetim\nVmPeak:\t  900 kB\nVmRSS:\t   12345 kB\nThreads:\t3\n";
        assert_eq!(parse_rss(status), Some(12345 * 1024));
        assert_eq!(parse_rss("Name:\tx\n"), None);
        assert!(rss_bytes("self").unwrap() > 0);
    }
}
