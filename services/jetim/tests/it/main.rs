//! The `jetim` binary as an operator runs it: bad settings and unreachable servers, and
//! `jetim migrate` / `jetim ops streams` against a private server.

use std::process::{Command, Output};

use jetim_common::testing::{TestDatabase, TestNats};
use jetim_schemas::event::{Event, TimelineEvent};
use serde::{Deserialize, Serialize};

/// The environment that points jetim at `nats` and `database`.
fn environment_of<'a>(
    nats: &'a TestNats,
    database: &'a TestDatabase,
) -> [(&'static str, &'a str); 2] {
    [
        ("JETIM_NATS__URL", nats.url.as_str()),
        ("JETIM_POSTGRES__URL", database.config.url.as_str()),
    ]
}

fn jetim(args: &[&str], environment: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_jetim"));
    command.args(args);
    // Only what the test says: no JETIM_* from the caller's shell.
    for (name, _) in std::env::vars() {
        if name.starts_with("JETIM_") {
            command.env_remove(name);
        }
    }
    command
        .env("JETIM_TELEMETRY__LOG", "warn")
        .env("NO_COLOR", "1");
    for (name, value) in environment {
        command.env(name, value);
    }
    command.output().expect("jetim runs")
}

/// The failure line: the process failed, did not panic, and its last line is `error: …`.
fn failure_line(output: &Output) -> String {
    assert_eq!(output.status.code(), Some(1), "exit status");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!stderr.contains("backtrace"), "{stderr}");
    let last = stderr.lines().last().unwrap_or_default().to_owned();
    assert!(last.starts_with("error: "), "{stderr}");
    last
}

#[test]
fn bad_settings_get_one_line_naming_the_setting() {
    let cases = [
        ("JETIM_NATS__URL", "http://[::1", "nats.url"),
        ("JETIM_NATS__STREAM_REPLICAS", "0", "nats.stream_replicas"),
        (
            "JETIM_NATS__STREAM_REPLICAS",
            "many",
            "nats.stream_replicas",
        ),
        (
            "JETIM_NATS__CREDENTIALS_FILE",
            "/no/such.creds",
            "nats.credentials_file",
        ),
        ("JETIM_POSTGRES__URL", "mysql://x", "postgres.url"),
        ("JETIM_POSTGRES__POOL_SIZE", "0", "postgres.pool_size"),
        ("JETIM_API__LISTEN", "localhost", "api.listen"),
        ("JETIM_API__LISTN", "0.0.0.0:1", "listn"),
        ("JETIM_TELEMETRY__LOG_FORMAT", "xml", "telemetry.log_format"),
        (
            "JETIM_TELEMETRY__OTLP_ENDPOINT",
            "collector",
            "telemetry.otlp_endpoint",
        ),
    ];
    for (variable, value, setting) in cases {
        let line = failure_line(&jetim(&["migrate"], &[(variable, value)]));
        assert!(
            line.starts_with("error: config: "),
            "{variable}={value}: {line}"
        );
        assert!(line.contains(setting), "{variable}={value}: {line}");
    }
}

#[test]
fn a_missing_config_file_is_named() {
    let line = failure_line(&jetim(&["--config", "/no/jetim.yaml", "migrate"], &[]));
    assert_eq!(line, "error: config: file /no/jetim.yaml does not exist");
}

#[test]
fn an_unreachable_nats_is_named_with_its_setting() {
    let closed_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("nats://127.0.0.1:{closed_port}");
    let line = failure_line(&jetim(&["migrate"], &[("JETIM_NATS__URL", &url)]));
    assert!(
        line.starts_with(&format!(
            "error: cannot reach NATS at {url} (setting nats.url): "
        )),
        "{line}"
    );
}

#[tokio::test]
async fn an_unreachable_postgres_is_named_with_its_setting_and_no_password() {
    let nats = TestNats::start().await;
    let output = jetim(
        &["migrate"],
        &[
            ("JETIM_NATS__URL", &nats.url),
            (
                "JETIM_POSTGRES__URL",
                "postgres://jetim:secret@127.0.0.1:1/jetim",
            ),
        ],
    );
    let line = failure_line(&output);
    assert!(
        line.starts_with(
            "error: cannot reach Postgres at postgres://jetim:***@127.0.0.1:1/jetim (setting postgres.url): "
        ),
        "{line}"
    );
    assert!(!String::from_utf8_lossy(&output.stderr).contains("secret"));
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Ping {
    seq: u64,
}

impl Event for Ping {
    const KIND: &'static str = "test.ping";
    const VERSION: u32 = 1;
}

impl TimelineEvent for Ping {
    fn set_seq(&mut self, seq: u64) {
        self.seq = seq;
    }
}

#[tokio::test]
async fn migrate_then_ops_streams_shows_what_the_nats_cli_would() {
    let nats = TestNats::start().await;
    let database = TestDatabase::empty().await;
    let environment = environment_of(&nats, &database);
    let migrated = jetim(&["migrate"], &environment);
    assert!(migrated.status.success(), "{migrated:?}");
    let migrations = jetim_common::migrate::EMBEDDED.len();
    assert!(
        String::from_utf8_lossy(&migrated.stdout)
            .contains(&format!("migrations: {migrations} applied now")),
        "{migrated:?}"
    );

    let jetstream = nats.jetstream().await;
    let log = jetim_streams::EventLog::open(jetstream.clone())
        .await
        .unwrap();
    for (conversation, key) in [("si_a_b", "1"), ("si_a_b", "2"), ("sg_g", "1")] {
        log.append_to_timeline(conversation, key, "a", &Ping { seq: 0 })
            .await
            .unwrap();
    }
    let stream = jetstream.get_stream("IM_CONV").await.unwrap();
    stream
        .create_consumer(async_nats::jetstream::consumer::pull::Config {
            durable_name: Some("messages_v1".into()),
            ..Default::default()
        })
        .await
        .unwrap();

    let output = jetim(&["ops", "streams", "--json"], &environment);
    assert!(output.status.success(), "{output:?}");
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let conv = &report[0];
    assert_eq!(conv["name"], "IM_CONV");
    assert_eq!(conv["messages"], 3);
    assert_eq!(conv["subjects"], 2);
    assert_eq!(conv["first_sequence"], 1);
    assert_eq!(conv["last_sequence"], 3);
    assert_eq!(conv["consumers"][0]["name"], "messages_v1");
    assert_eq!(conv["consumers"][0]["pending"], 3);
    assert_eq!(report[1]["name"], "IM_USER");
    assert_eq!(report[1]["messages"], 0);

    let table = jetim(&["ops", "streams"], &environment);
    let table = String::from_utf8_lossy(&table.stdout);
    assert!(
        table.lines().any(|line| line.starts_with("IM_CONV ")),
        "{table}"
    );
    assert!(table.contains("messages_v1"), "{table}");

    // Running migrate again changes nothing.
    let again = jetim(&["migrate"], &environment);
    assert!(
        String::from_utf8_lossy(&again.stdout)
            .contains(&format!("0 applied now, {migrations} already applied"))
    );
}

/// A stand-in OTLP/HTTP collector: records the request line and content type of each request.
fn fake_collector() -> (String, std::sync::mpsc::Receiver<String>) {
    use std::io::{BufRead as _, BufReader, Read as _, Write as _};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}/v1/traces", listener.local_addr().unwrap());
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request = String::new();
            let mut length = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                let lower = line.to_ascii_lowercase();
                if let Some(value) = lower.strip_prefix("content-length:") {
                    length = value.trim().parse().unwrap_or(0);
                }
                if request.is_empty() || lower.starts_with("content-type:") {
                    request.push_str(line.trim_end());
                    request.push(' ');
                }
            }
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n");
            let _ = sender.send(request);
        }
    });
    (endpoint, receiver)
}

#[tokio::test]
async fn spans_are_exported_over_otlp_when_an_endpoint_is_configured() {
    let nats = TestNats::start().await;
    let database = TestDatabase::empty().await;
    let (endpoint, requests) = fake_collector();
    let output = jetim(
        &["migrate"],
        &[
            ("JETIM_NATS__URL", nats.url.as_str()),
            ("JETIM_POSTGRES__URL", database.config.url.as_str()),
            ("JETIM_TELEMETRY__OTLP_ENDPOINT", endpoint.as_str()),
            ("JETIM_TELEMETRY__LOG", "info"),
        ],
    );
    assert!(output.status.success(), "{output:?}");
    let request = requests
        .recv_timeout(std::time::Duration::from_secs(10))
        .expect("the collector received spans");
    assert!(request.starts_with("POST /v1/traces "), "{request}");
    assert!(
        request
            .to_ascii_lowercase()
            .contains("application/x-protobuf"),
        "{request}"
    );
}

#[tokio::test]
async fn ops_audit_prints_a_conversations_events_as_json_lines_and_ops_lag_the_projections() {
    let nats = TestNats::start().await;
    let database = TestDatabase::empty().await;
    let environment = environment_of(&nats, &database);
    assert!(jetim(&["migrate"], &environment).status.success());
    let log = jetim_streams::EventLog::open(nats.jetstream().await)
        .await
        .unwrap();
    for (conversation, key) in [("si_a.b_c", "1"), ("si_other", "1"), ("si_a.b_c", "2")] {
        log.append_to_timeline(conversation, key, "a.b", &Ping { seq: 0 })
            .await
            .unwrap();
    }

    let output = jetim(
        &["ops", "audit", "--conversation", "si_a.b_c"],
        &environment,
    );
    assert!(output.status.success(), "{output:?}");
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["subject"], "im.conv.si_a=2Eb_c.msg");
    assert_eq!(lines[0]["event"], "test.ping");
    assert_eq!(lines[0]["actor"], "a.b");
    assert_eq!(lines[0]["seq"], 1);
    assert_eq!(lines[1]["seq"], 2);
    assert_eq!(lines[1]["data"]["seq"], 2);

    let none = jetim(
        &[
            "ops",
            "audit",
            "--conversation",
            "si_a.b_c",
            "--kind",
            "msg.",
        ],
        &environment,
    );
    assert!(none.stdout.is_empty());
    let future = jetim(
        &[
            "ops",
            "audit",
            "--conversation",
            "si_a.b_c",
            "--since",
            "2999-01-01T00:00:00Z",
        ],
        &environment,
    );
    assert!(
        future.status.success() && future.stdout.is_empty(),
        "{future:?}"
    );
    let bad = jetim(
        &[
            "ops",
            "audit",
            "--conversation",
            "x",
            "--since",
            "yesterday",
        ],
        &environment,
    );
    assert_eq!(bad.status.code(), Some(2), "clap refuses a bad time");

    let output = jetim(&["ops", "lag", "--json"], &environment);
    assert!(output.status.success(), "{output:?}");
    let rows: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let messages = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|row| row["projection"] == "messages")
        .unwrap();
    assert_eq!(messages["stream"], "IM_CONV");
    assert_eq!(messages["applied_sequence"], 0);
    assert_eq!(messages["stream_last_sequence"], 3);
    assert_eq!(
        messages["pending"], 3,
        "no projector has run: everything is pending"
    );
}

#[tokio::test]
async fn bench_rebuild_reports_its_rates_and_where_the_time_went() {
    let nats = TestNats::start().await;
    let database = TestDatabase::empty().await;
    let environment = environment_of(&nats, &database);
    assert!(jetim(&["migrate"], &environment).status.success());
    let directory = tempfile::tempdir().unwrap();
    let report_path = directory.path().join("rebuild.json");
    let output = jetim(
        &[
            "bench",
            "rebuild",
            "--events",
            "600",
            "--conversations",
            "7",
            "--batch",
            "100",
            "--report",
            report_path.to_str().unwrap(),
        ],
        &environment,
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{output:?}");
    assert!(stdout.contains("WHERE THE TIME WENT"), "{stdout}");
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&report_path).unwrap()).unwrap();
    let names: Vec<&str> = report["figures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|figure| figure["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "append (jetim's append path)",
            "replay (read only, the ceiling)",
            "rebuild: filling the copies alone",
            "rebuild (conversations read model)"
        ]
    );
    // Every event appended was replayed and rebuilt, nearly all of them by the fill.
    for figure in &report["figures"].as_array().unwrap()[..2] {
        assert_eq!(figure["events"], 600, "{figure}");
    }
    let filled = report["figures"][2]["events"].as_u64().unwrap();
    assert!(filled > 0 && filled <= 600, "{report}");
    assert_eq!(report["figures"][3]["events"], 600, "{report}");
    // The parts add up to the rebuild's time.
    let phases = report["phases"].as_array().unwrap();
    assert_eq!(phases.len(), 6, "{report}");
    let parts: f64 = phases
        .iter()
        .map(|phase| phase["seconds"].as_f64().unwrap())
        .sum();
    let whole = report["figures"][3]["seconds"].as_f64().unwrap();
    assert!((parts - whole).abs() < 0.001, "{parts} against {whole}");
    assert!(
        phases
            .iter()
            .all(|phase| phase["seconds"].as_f64().unwrap() >= 0.0)
    );
    // What the fill waited for is part of the fill, and the table shows it.
    let waits = &report["fill_waits"];
    let fill = phases[1]["seconds"].as_f64().unwrap();
    assert!(
        (waits["seconds"].as_f64().unwrap() - fill).abs() < 1e-9,
        "{report}"
    );
    let waited = waits["log_seconds"].as_f64().unwrap() + waits["lanes_seconds"].as_f64().unwrap();
    assert!(waits["log_seconds"].as_f64().unwrap() > 0.0, "{report}");
    assert!(waited <= fill, "{report}");
    assert!(stdout.contains("events from the log (NATS)"), "{stdout}");
    // What the rebuilt read model holds was checked after the switch: every message, in
    // conversations whose seqs run from 1 without a gap.
    let rebuilt = &report["rebuilt"];
    assert_eq!(rebuilt["messages"], 600, "{report}");
    assert_eq!(rebuilt["conversations"], 7, "{report}");
    assert_eq!(rebuilt["conversations_filled"], 7, "{report}");
    assert_eq!(rebuilt["broken_conversations"], 0, "{report}");
    let whole = report["targets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|target| target["what"] == "the rebuilt read model holds every message, without gaps")
        .unwrap();
    assert_eq!(whole["met"], true, "{report}");
    assert!(stdout.contains("checked after the switch: messages_v1 holds 600 messages in 7 of the run's 7 conversations"), "{stdout}");
}

#[tokio::test]
async fn ops_rebuild_replaces_a_read_model_from_the_log_and_reports_what_it_did() {
    use jetim_schemas::events::user::UserRegistered;
    let nats = TestNats::start().await;
    let database = TestDatabase::empty().await;
    let environment = environment_of(&nats, &database);
    assert!(jetim(&["migrate"], &environment).status.success());
    let log = jetim_streams::EventLog::open(nats.jetstream().await)
        .await
        .unwrap();
    let registrations: Vec<_> = ["r1", "r2", "r3"]
        .into_iter()
        .map(|user| {
            (
                jetim_streams::Subject::user(user, jetim_streams::subject::UserKind::Account)
                    .unwrap(),
                jetim_streams::Expect::Empty,
                UserRegistered {
                    user_id: user.into(),
                    nickname: format!("{user} nick"),
                    face_url: String::new(),
                    ex: String::new(),
                    app_manger_level: 1,
                    global_recv_msg_opt: 0,
                    create_time: 1,
                },
            )
        })
        .collect();
    log.append_atomically("test", &registrations).await.unwrap();

    // No projector has run: the rebuild alone fills users_v1 from the log.
    let output = jetim(&["ops", "rebuild", "users", "--batch", "2"], &environment);
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.starts_with("rebuilt users: 3 events in "),
        "{stdout}"
    );
    assert!(stdout.contains("  setting up "), "{stdout}");
    assert!(stdout.contains("; filling "), "{stdout}");
    assert!(stdout.contains("  the fill waited "), "{stdout}");
    assert!(
        stdout.contains("  users: 3 events, at stream sequence 3"),
        "{stdout}"
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("rebuilding users (users) from the log"),
        "{stderr}"
    );
    assert!(stderr.contains("users: stream sequence "), "{stderr}");
    let client = database.pool().get().await.unwrap();
    let nicknames: Vec<String> = client
        .query("SELECT nickname FROM users_v1 ORDER BY user_id", &[])
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(nicknames, ["r1 nick", "r2 nick", "r3 nick"]);
    let (position, rebuilds): (i64, i32) = client
        .query_one(
            "SELECT stream_sequence, rebuilds FROM projections WHERE name = 'users'",
            &[],
        )
        .await
        .map(|row| (row.get(0), row.get(1)))
        .unwrap();
    assert_eq!((position, rebuilds), (3, 1));

    let unknown = jetim(&["ops", "rebuild", "nothing"], &environment);
    assert_eq!(
        failure_line(&unknown),
        "error: no read model or projection is called \"nothing\"; there are: users, user_settings, relations, conversations (messages, conversation_settings, groups, group_profiles)"
    );
}

/// A free TCP port on 127.0.0.1.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `jetim all` as a child process, killed when dropped.
struct RunningJetim(std::process::Child);

impl Drop for RunningJetim {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn the_bench_scenarios_load_a_running_jetim_and_account_for_every_message() {
    let nats = TestNats::start().await;
    let database = TestDatabase::empty().await;
    let api = format!("127.0.0.1:{}", free_port());
    let gateway = format!("127.0.0.1:{}", free_port());
    let environment = [
        ("JETIM_NATS__URL", nats.url.as_str()),
        ("JETIM_POSTGRES__URL", database.config.url.as_str()),
        ("JETIM_API__LISTEN", api.as_str()),
        ("JETIM_GATEWAY__LISTEN", gateway.as_str()),
    ];
    assert!(jetim(&["migrate"], &environment).status.success());
    let mut command = Command::new(env!("CARGO_BIN_EXE_jetim"));
    command
        .arg("all")
        .env("JETIM_TELEMETRY__LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    for (name, value) in environment {
        command.env(name, value);
    }
    let server = RunningJetim(command.spawn().unwrap());
    let health = format!("http://{api}/healthz");
    let mut healthy = false;
    for _ in 0..300 {
        if reqwest::get(&health)
            .await
            .is_ok_and(|reply| reply.status().is_success())
        {
            healthy = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(healthy, "jetim all serves /healthz");
    let directory = tempfile::tempdir().unwrap();
    let report_path = directory.path().join("chat.json");
    let plot_path = directory.path().join("chat.svg");

    let watch_server = format!("jetim={}", server.0.id());
    // Every process of the test's nats-server binary, by its command name (the file name,
    // cut to 15 characters as Linux keeps it).
    let nats_binary = jetim_common::testing::nats_server_binary();
    let nats_command: String = nats_binary
        .file_name()
        .unwrap()
        .to_string_lossy()
        .chars()
        .take(15)
        .collect();
    let watch_nats = format!("nats=comm:{nats_command}");
    let output = tokio::task::spawn_blocking({
        let (report, plot) = (report_path.clone(), plot_path.clone());
        let environment: Vec<(String, String)> = environment
            .iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
            .collect();
        move || {
            let environment: Vec<(&str, &str)> = environment
                .iter()
                .map(|(name, value)| (name.as_str(), value.as_str()))
                .collect();
            jetim(
                &[
                    "bench",
                    "chat",
                    "--pairs",
                    "5",
                    "--rate",
                    "50",
                    "--seconds",
                    "2",
                    "--ramp-seconds",
                    "1",
                    "--baseline-messages",
                    "300",
                    "--report",
                    report.to_str().unwrap(),
                    "--plot",
                    plot.to_str().unwrap(),
                    "--cpu",
                    &watch_server,
                    "--cpu",
                    &watch_nats,
                ],
                &environment,
            )
        }
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{output:?}");
    assert!(stdout.starts_with("chat on "), "{stdout}");
    assert!(stdout.contains(r#""sdk":"js""#), "{stdout}");
    assert!(stdout.contains("raw JetStream append"), "{stdout}");
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&report_path).unwrap()).unwrap();
    let accounting = &report["accounting"];
    // 10 users: a warm-up message each, then 50/s for a second of ramp and 2 s measured.
    assert_eq!(accounting["sent"], 160, "{accounting}");
    assert_eq!(accounting["acked"], 160, "{accounting}");
    assert_eq!(accounting["expected_deliveries"], 160, "{accounting}");
    assert_eq!(accounting["delivered_once"], 160, "{accounting}");
    for zero in [
        "lost",
        "duplicated",
        "refused",
        "unanswered",
        "missing_from_pull",
        "seq_gaps",
    ] {
        assert_eq!(accounting[zero], 0, "{zero}: {accounting}");
    }
    assert_eq!(accounting["pulled_conversations"], 5, "{accounting}");
    assert_eq!(report["latencies"][1]["name"], "send→deliver");
    // Only the measured seconds count in the latencies.
    assert_eq!(report["latencies"][1]["count"], 100, "{report}");
    let raw = report["figures"]
        .as_array()
        .unwrap()
        .iter()
        .find(|figure| figure["name"] == "raw JetStream append (expected seq + dedup)")
        .expect("the raw-append baseline");
    assert_eq!(raw["events"], 300);
    assert!(raw["per_second"].as_f64().unwrap() > 0.0);
    let chat = report["figures"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(chat["baseline"], raw["name"], "{chat}");
    // The CPU of the load client, the server and every nats-server, per message of the
    // load (the ramp's and the steps').
    let cpu = report["cpu"].as_array().expect("CPU figures");
    let names: Vec<&str> = cpu
        .iter()
        .map(|process| process["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["load client", "jetim", "nats"], "{cpu:?}");
    assert_eq!(cpu[1]["processes"], 1, "{cpu:?}");
    assert!(cpu[2]["processes"].as_u64().unwrap() >= 1, "{cpu:?}");
    let spent: f64 = cpu
        .iter()
        .map(|process| process["us_per_message"].as_f64().unwrap())
        .sum();
    assert!(spent > 0.0, "{cpu:?}");
    // Each process' kernel time is part of its whole.
    for process in cpu {
        let kernel = process["kernel_ms_per_second"].as_f64().unwrap();
        assert!(
            (0.0..=process["ms_per_second"].as_f64().unwrap()).contains(&kernel),
            "{cpu:?}"
        );
    }
    assert!(stdout.contains("CPU WHILE LOADED"), "{stdout}");
    assert!(stdout.contains("IN KERNEL"), "{stdout}");
    let svg = std::fs::read_to_string(&plot_path).unwrap();
    assert!(
        svg.contains("<svg") && svg.contains("send→deliver"),
        "a plot"
    );
    // The baseline's stream is gone; jetim's are untouched.
    let streams = nats.jetstream().await;
    assert!(streams.get_stream("BENCH_RAW").await.is_err());

    let environment_owned: Vec<(String, String)> = environment
        .iter()
        .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
        .collect();
    let pid = server.0.id().to_string();
    let output = tokio::task::spawn_blocking(move || {
        let environment: Vec<(&str, &str)> = environment_owned
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str()))
            .collect();
        let group = jetim(
            &[
                "bench",
                "group",
                "--groups",
                "2",
                "--members",
                "6",
                "--senders",
                "2",
                "--rate",
                "20",
                "--seconds",
                "2",
                "--ramp-seconds",
                "1",
                "--baseline-messages",
                "300",
                // The group and connect runs speak as the native Go SDK (gzip'd gob), the
                // chat run as the JS SDK: both of the load client's envelopes are checked.
                "--sdk",
                "go",
            ],
            &environment,
        );
        let connect = jetim(
            &[
                "bench",
                "connect",
                "--connections",
                "50",
                "--hold-seconds",
                "1",
                "--workers",
                "2",
                "--server-pid",
                &pid,
                "--sdk",
                "go",
            ],
            &environment,
        );
        // Held in this process, with long frames: each connection has its ping echoed in
        // three rounds, and the last two are timed.
        let echoes = jetim(
            &[
                "bench",
                "connect",
                "--connections",
                "20",
                "--hold-seconds",
                "1",
                "--echo-bytes",
                "20000",
                "--echo-rounds",
                "3",
                "--unanswered-bytes",
                "10000",
                "--server-pid",
                &pid,
            ],
            &environment,
        );
        (group, connect, echoes)
    })
    .await
    .unwrap();
    let (group, connect, echoes) = output;
    let stdout = String::from_utf8_lossy(&group.stdout);
    assert!(group.status.success(), "{group:?}");
    assert!(stdout.contains(r#""sdk":"go""#), "{stdout}");
    // 2 groups × 2 senders: a warm-up message each and 20/s for 1 s of ramp and 2 s
    // measured, each to 5 others.
    assert!(
        stdout.contains(
            "deliveries expected 320, once 320, lost 0, duplicated 0, unacked but delivered 0; pulled 2 conversations: 0 acked messages missing, 0 seq gaps"
        ),
        "{stdout}"
    );
    let stdout = String::from_utf8_lossy(&connect.stdout);
    assert!(connect.status.success(), "{connect:?}");
    assert!(
        stdout.contains("memory: 50 idle connections; server RSS "),
        "{stdout}"
    );
    let stdout = String::from_utf8_lossy(&echoes.stdout);
    assert!(echoes.status.success(), "{echoes:?}");
    assert!(
        stdout.contains(r#""echo_bytes":20000,"echo_rounds":3"#),
        "{stdout}"
    );
    let timed = stdout
        .lines()
        .find_map(|line| line.strip_prefix("long frames echoed"))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_default();
    assert_eq!(timed, "40", "20 connections × 2 timed rounds: {stdout}");
    // The CPU table has the server's line.
    assert!(
        stdout.lines().any(|line| line.starts_with("jetim ")),
        "{stdout}"
    );
    drop(server);
}
