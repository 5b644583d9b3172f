//! The CPU time the processes on the box spend while the load runs (`--cpu NAME=WHICH`), read
//! from `/proc/<pid>/stat`: on one machine, jetim, nats-server, Postgres and the load client
//! share the cores, and what each takes a message says where a rate's limit comes from.
//!
//! Each process' time is split into its own code's and the kernel's (user and system time),
//! since on one box the kernel's share is large: every WebSocket frame and NATS message
//! crosses loopback TCP, whose sending and receiving the kernel does on the processes' time.
//!
//! Two fields of one file per process: the `procfs` crate would bring a dependency tree for
//! them. Linux only; elsewhere every process reads as gone.

use std::collections::HashMap;
use std::time::Instant;

use serde::Serialize;

/// `/proc` counts CPU time in clock ticks of 1/100 s: Linux fixes `USER_HZ` at 100 in the ABI
/// it shows user space, whatever the kernel's own tick.
const TICKS_PER_SECOND: f64 = 100.0;

/// Processes whose CPU time is added up under one name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Watched {
    name: String,
    which: Which,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Which {
    /// These processes.
    Pids(Vec<u32>),
    /// Every process whose command name (`/proc/<pid>/comm`) is this, as it is when the
    /// load starts and when it ends (Postgres starts a backend per connection).
    Named(String),
}

impl Watched {
    /// These processes, under `name`.
    pub(crate) fn pids(name: &str, pids: &[u32]) -> Self {
        Self {
            name: name.to_owned(),
            which: Which::Pids(pids.to_vec()),
        }
    }
}

/// Parses `NAME=PID[,PID…]` or `NAME=comm:COMMAND`.
pub(crate) fn parse_watched(spec: &str) -> Result<Watched, String> {
    let (name, which) = spec
        .split_once('=')
        .ok_or_else(|| format!("{spec:?} is not NAME=PID[,PID…] or NAME=comm:COMMAND"))?;
    if name.is_empty() {
        return Err(format!("{spec:?} names no process"));
    }
    let which = match which.strip_prefix("comm:") {
        Some("") => return Err(format!("{spec:?} gives no command name")),
        Some(command) => Which::Named(command.to_owned()),
        None => Which::Pids(
            which
                .split(',')
                .map(|pid| {
                    pid.parse::<u32>()
                        .map_err(|_| format!("{pid:?} in {spec:?} is not a process ID"))
                })
                .collect::<Result<_, _>>()?,
        ),
    };
    Ok(Watched {
        name: name.to_owned(),
        which,
    })
}

/// `--cpu`, for the scenarios that load a running jetim.
#[derive(Debug, Clone, Default, clap::Args)]
pub(crate) struct CpuArgs {
    /// Reports the CPU time of these processes while the load runs, in all and per
    /// acknowledged message: `NAME=PID[,PID…]`, or `NAME=comm:COMMAND` for every process
    /// of that command name. Repeatable; the load client itself is always reported.
    #[arg(long = "cpu", value_parser = parse_watched)]
    pub(crate) watched: Vec<Watched>,
}

/// What one name's processes spent while the load ran.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub(crate) struct ProcessCpu {
    pub(crate) name: String,
    /// How many processes were counted.
    pub(crate) processes: usize,
    /// Milliseconds of CPU a second of the load (1,000 is one core kept busy).
    pub(crate) ms_per_second: f64,
    /// Microseconds of CPU per acknowledged message; none when none was.
    pub(crate) us_per_message: Option<f64>,
    /// Of `ms_per_second`, what the kernel spent on the processes' behalf (system time).
    pub(crate) kernel_ms_per_second: f64,
}

/// CPU time in clock ticks: the process' own code, and the kernel's on its behalf.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Ticks {
    user: u64,
    system: u64,
}

impl Ticks {
    /// What was spent since `before`.
    fn since(self, before: Self) -> Self {
        Self {
            user: self.user.saturating_sub(before.user),
            system: self.system.saturating_sub(before.system),
        }
    }
}

/// The readings at the start of the load.
pub(crate) struct CpuWatch {
    watched: Vec<Watched>,
    started: Instant,
    /// Per watched name: each process' ticks then.
    before: Vec<HashMap<u32, Ticks>>,
}

impl CpuWatch {
    /// Reads the processes now. The load client (this process) comes first.
    pub(crate) fn start(watched: &[Watched]) -> Self {
        let mut watched = watched.to_vec();
        watched.insert(
            0,
            Watched {
                name: "load client".to_owned(),
                which: Which::Pids(vec![std::process::id()]),
            },
        );
        let before = watched.iter().map(read_ticks).collect();
        Self {
            watched,
            started: Instant::now(),
            before,
        }
    }

    /// What each name's processes spent since [`CpuWatch::start`], over `messages`
    /// acknowledged meanwhile. A process that was not there at the start counts in full;
    /// one gone by the end counts for nothing.
    pub(crate) fn finish(self, messages: u64) -> Vec<ProcessCpu> {
        let seconds = self.started.elapsed().as_secs_f64().max(1e-9);
        self.watched
            .iter()
            .zip(&self.before)
            .map(|(watched, before)| {
                let after = read_ticks(watched);
                let (user, system) = after
                    .iter()
                    .map(|(pid, now)| now.since(before.get(pid).copied().unwrap_or_default()))
                    .fold((0, 0), |(user, system), spent| {
                        (user + spent.user, system + spent.system)
                    });
                let to_ms = |ticks: u64| ticks as f64 * 1_000.0 / TICKS_PER_SECOND;
                let ms = to_ms(user + system);
                ProcessCpu {
                    name: watched.name.clone(),
                    processes: after.len(),
                    ms_per_second: ms / seconds,
                    us_per_message: (messages > 0).then(|| ms * 1_000.0 / messages as f64),
                    kernel_ms_per_second: to_ms(system) / seconds,
                }
            })
            .collect()
    }
}

/// The ticks of each of `watched`'s processes that can be read now.
fn read_ticks(watched: &Watched) -> HashMap<u32, Ticks> {
    let pids = match &watched.which {
        Which::Pids(pids) => pids.clone(),
        Which::Named(command) => named(command),
    };
    pids.into_iter()
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            Some((pid, stat_ticks(&stat)?))
        })
        .collect()
}

/// The processes whose command name is `command`.
fn named(command: &str) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|comm| comm.trim_end() == command)
        })
        .collect()
}

/// User and system ticks from a `/proc/<pid>/stat` line: fields 14 and 15, counted after
/// the command name, which sits in parentheses and may hold spaces and parentheses itself.
fn stat_ticks(stat: &str) -> Option<Ticks> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    Some(Ticks { user, system })
}

#[cfg(test)]
mod tests {
    use super::{CpuWatch, Ticks, Which, parse_watched, stat_ticks};

    #[test]
    fn specs_name_pids_or_a_command() {
        let watched = parse_watched("jetim=12,34").unwrap();
        assert_eq!(watched.name, "jetim");
        assert_eq!(watched.which, Which::Pids(vec![12, 34]));
        let watched = parse_watched("db=comm:postgres").unwrap();
        assert_eq!(watched.which, Which::Named("postgres".into()));
        for bad in [
            "jetim",
            "=12",
            "jetim=",
            "jetim=12,x",
            "jetim=-1",
            "db=comm:",
        ] {
            assert!(parse_watched(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ticks_are_read_past_a_command_name_with_spaces_and_parentheses() {
        let stat = "4242 (a (b) c) S 1 4242 4242 0 -1 4194560 1188 0 0 0 37 5 0 0 20 0 9 0 \
                    123 4567 89 18446744073709551615";
        assert_eq!(
            stat_ticks(stat),
            Some(Ticks {
                user: 37,
                system: 5
            })
        );
        assert_eq!(stat_ticks("4242 (cut) S 1 2"), None);
        assert_eq!(stat_ticks("no parentheses"), None);
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn the_load_client_is_always_counted_and_its_work_shows() {
        let ticks_now = || {
            let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
            let ticks = stat_ticks(&stat).unwrap();
            ticks.user + ticks.system
        };
        let watch = CpuWatch::start(&[]);
        // Work until the process has spent ten more clock ticks (100 ms), however busy the
        // machine is.
        let first = ticks_now();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let mut spun = 0_u64;
        while ticks_now() < first + 10 && std::time::Instant::now() < deadline {
            for _ in 0..100_000 {
                spun = std::hint::black_box(spun.wrapping_add(1));
            }
        }
        let spent = watch.finish(10);
        assert_eq!(spent.len(), 1);
        assert_eq!(spent[0].name, "load client");
        assert_eq!(spent[0].processes, 1);
        // At least 100 ms over 10 messages.
        assert!(spent[0].us_per_message >= Some(10_000.0), "{spent:?}");
        assert!(spent[0].ms_per_second > 0.0, "{spent:?}");
        // The loop runs in the process' own code: the kernel's part is some of the whole.
        assert!(
            (0.0..spent[0].ms_per_second).contains(&spent[0].kernel_ms_per_second),
            "{spent:?}"
        );
    }

    #[test]
    fn time_spent_is_counted_apart_for_the_process_and_the_kernel() {
        let before = Ticks {
            user: 100,
            system: 40,
        };
        let now = Ticks {
            user: 130,
            system: 55,
        };
        assert_eq!(
            now.since(before),
            Ticks {
                user: 30,
                system: 15
            }
        );
        // A process that restarted under the same pid counts from nothing, not below it.
        assert_eq!(before.since(now), Ticks::default());
    }
}
