//! jetim's configuration: one YAML file, overridden by environment variables.
//!
//! Every field has a default that runs on one machine, so no file is needed to start. The
//! documented example with every field is `ops/jetim.yaml`. An environment variable
//! `JETIM_<SECTION>__<KEY>` overrides the field `<section>.<key>` of the file, e.g.
//! `JETIM_POSTGRES__URL=postgres://jetim@db/jetim`. Only variables with the `__` separator
//! are settings; others such as `JETIM_CONFIG` (the file) or the `ops/` scripts' own
//! `JETIM_STATE_DIR` are not.
//!
//! [`Config::load`] refuses unknown fields and invalid values with one line that names the
//! field and the value. Secrets (the Postgres password) are never printed: `Debug` and error
//! messages show them as `***`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::str::FromStr as _;

use serde::{Deserialize, Serialize};

/// The environment variable naming the config file.
pub const CONFIG_FILE_VARIABLE: &str = "JETIM_CONFIG";
const ENVIRONMENT_PREFIX: &str = "JETIM";

/// All of jetim's settings.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// The NATS server or cluster holding the event log.
    pub nats: NatsConfig,
    /// The Postgres database holding the read models.
    pub postgres: PostgresConfig,
    /// The OpenIM REST API service.
    pub api: ApiConfig,
    /// The OpenIM WebSocket gateway.
    pub gateway: GatewayConfig,
    /// The push service: delivery to online users, offline push.
    pub push: PushConfig,
    /// Who is online, shared by every gateway.
    pub presence: PresenceConfig,
    /// Rules for sending messages.
    pub messaging: MessagingConfig,
    /// Admins, the secret and login tokens.
    pub auth: AuthConfig,
    /// Logs, traces and metrics.
    pub telemetry: TelemetryConfig,
}

/// The NATS connection.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct NatsConfig {
    /// Server URL(s), comma-separated: `nats://host:4222`. The server must be 2.12 or newer
    /// with JetStream enabled.
    pub url: String,
    /// A `.creds` file for servers that require authentication; empty for none.
    pub credentials_file: String,
    /// Replicas for jetim's streams: 1 on a single server, 3 in a production cluster.
    pub stream_replicas: usize,
    /// How long to wait for a JetStream answer, in milliseconds.
    pub request_timeout_ms: u64,
}

impl Default for NatsConfig {
    fn default() -> Self {
        Self {
            url: "nats://127.0.0.1:4222".to_owned(),
            credentials_file: String::new(),
            stream_replicas: 1,
            request_timeout_ms: 5_000,
        }
    }
}

/// The Postgres connection.
#[derive(Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct PostgresConfig {
    /// Connection URL: `postgres://user:password@host:5432/database`. The password is never
    /// logged.
    pub url: String,
    /// The most connections jetim holds open.
    pub pool_size: usize,
    /// How long to wait for a connection, in milliseconds.
    pub connect_timeout_ms: u64,
}

impl Default for PostgresConfig {
    fn default() -> Self {
        Self {
            url: "postgres://postgres@127.0.0.1:5432/jetim".to_owned(),
            pool_size: 16,
            connect_timeout_ms: 5_000,
        }
    }
}

impl PostgresConfig {
    /// The URL with any password replaced by `***`, for logs and messages.
    pub fn redacted_url(&self) -> String {
        redact_password(&self.url)
    }
}

impl std::fmt::Debug for PostgresConfig {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("PostgresConfig")
            .field("url", &self.redacted_url())
            .field("pool_size", &self.pool_size)
            .field("connect_timeout_ms", &self.connect_timeout_ms)
            .finish()
    }
}

/// The REST API service.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ApiConfig {
    /// Address to listen on; OpenIM clients expect port 10002.
    pub listen: SocketAddr,
    /// The largest request body accepted, in bytes; larger ones get errCode 1001.
    pub max_body_bytes: usize,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 10002)),
            max_body_bytes: 4 * 1024 * 1024,
        }
    }
}

/// The OpenIM WebSocket gateway.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct GatewayConfig {
    /// Address to listen on; OpenIM clients expect port 10001.
    pub listen: SocketAddr,
    /// The largest frame a client may send, in bytes (as received, compressed or not);
    /// larger ones close the connection.
    pub max_frame_bytes: usize,
    /// Frames waiting to be written to one connection; a client that falls further behind is
    /// closed with a reason.
    pub write_queue: usize,
    /// Seconds without any frame from a client before its connection is closed.
    pub read_timeout_secs: u64,
    /// Seconds between the WebSocket pings sent to web connections (platform 5), as OpenIM.
    pub web_ping_secs: u64,
    /// The most connections one gateway holds; handshakes beyond it are refused with 1601.
    pub max_connections: usize,
    /// How the gateway hears the pushes for its users: `shared` or `per_user`.
    pub deliveries: DeliverySubscription,
}

/// How a gateway subscribes to the pushes (`im.deliver.<userID>`) for the users it holds.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case", try_from = "String")]
pub enum DeliverySubscription {
    /// One subscription to every user's pushes (`im.deliver.*`); the gateway drops those for
    /// users it holds no connection of. An idle connection then costs no subscription (about
    /// 6 KB of the gateway's memory each, and nats-server's own record of it), and every
    /// gateway hears every push: right for one gateway or a few.
    #[default]
    Shared,
    /// A subscription per user with a connection here: each gateway hears only its own
    /// users' pushes, for clusters of many gateways, at the memory cost above.
    PerUser,
}

impl TryFrom<String> for DeliverySubscription {
    type Error = String;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        match text.as_str() {
            "shared" => Ok(Self::Shared),
            "per_user" => Ok(Self::PerUser),
            _ => Err(format!(
                "{text:?} is not a way to subscribe to deliveries: use shared or per_user"
            )),
        }
    }
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 10001)),
            max_frame_bytes: 51_200,
            write_queue: 256,
            read_timeout_secs: 60,
            web_ping_secs: 27,
            max_connections: 100_000,
            deliveries: DeliverySubscription::Shared,
        }
    }
}

/// The push service.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct PushConfig {
    /// Messages older than this many seconds when the push service reads them (after it was
    /// down, say) are not pushed: clients fetch them by seq sync anyway.
    pub max_age_secs: u64,
    /// Offline push: an `http://` URL that gets a POST for each message with recipients who
    /// are not online. Empty: no offline push.
    pub offline_webhook_url: String,
    /// How long one webhook call may take, in milliseconds.
    pub offline_webhook_timeout_ms: u64,
    /// How many groups' member lists the push service keeps in memory for fan-out.
    pub member_cache_groups: usize,
    /// How a message reaches its recipients' gateways: `conversation` or `per_user`.
    pub fanout: PushFanout,
    /// Under `fanout: conversation`, at most this many consecutive messages of one
    /// conversation read together go out in one push (1 to 100); 1 pushes every message
    /// alone, one frame each, as OpenIM's own server does.
    pub messages_per_push: usize,
    /// A busy group's message (the group had a push within this time) waits this many
    /// milliseconds (0 to 1,000) for the messages read after it, so that a busy group's
    /// messages share pushes and frames; 0 pushes every message as soon as it is read. A
    /// quiet group's message and every other never wait, but go with a group's that does.
    pub group_linger_ms: u64,
}

/// How the push service publishes a message for its recipients' gateways.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case", try_from = "String")]
pub enum PushFanout {
    /// One NATS message per message (per 1,000 recipients) on
    /// `im.fanout.<conversationID>`, naming its recipients; every gateway hears it and writes
    /// it to those it holds. A 200-member group's message costs one NATS message and one
    /// encoding per gateway instead of 200 of each.
    #[default]
    Conversation,
    /// One NATS message per recipient on `im.deliver.<userID>`, heard only by the gateways
    /// that subscribe to that user (or to every user): for clusters of so many gateways that
    /// each holding a few of a group's members is the rule.
    PerUser,
}

impl TryFrom<String> for PushFanout {
    type Error = String;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        match text.as_str() {
            "conversation" => Ok(Self::Conversation),
            "per_user" => Ok(Self::PerUser),
            _ => Err(format!(
                "{text:?} is not a way to fan out pushes: use conversation or per_user"
            )),
        }
    }
}

impl Default for PushConfig {
    fn default() -> Self {
        Self {
            max_age_secs: 300,
            offline_webhook_url: String::new(),
            offline_webhook_timeout_ms: 5000,
            member_cache_groups: 10_000,
            fanout: PushFanout::Conversation,
            messages_per_push: 100,
            group_linger_ms: 25,
        }
    }
}

/// Who is online.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct PresenceConfig {
    /// Seconds a gateway's word that a user is online stays good; gateways confirm it every
    /// third of this while the connection lives, so a gateway that dies stops counting
    /// within this time.
    pub ttl_secs: u64,
}

impl Default for PresenceConfig {
    fn default() -> Self {
        Self { ttl_secs: 90 }
    }
}

/// Rules for sending messages.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct MessagingConfig {
    /// Single chats only between friends (OpenIM's `friendVerify`): a user may message
    /// someone only while that user lists them as a friend; otherwise 1303. App admins,
    /// notification accounts and robots are exempt.
    pub friend_verify: bool,
    /// New group members read the group's history from its start (OpenIM's
    /// `enableHistoryForNewMembers`); when false, they read only what is sent after they join.
    pub enable_history_for_new_members: bool,
}

impl Default for MessagingConfig {
    fn default() -> Self {
        Self {
            friend_verify: false,
            enable_history_for_new_members: true,
        }
    }
}

/// Admins, the secret and login tokens.
#[derive(Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// The shared secret: `/auth/get_admin_token` checks it, and it signs every token.
    /// Change it in production; it is never logged.
    pub secret: String,
    /// Users who are admins: they may register users, issue user tokens, and act for anyone.
    pub admin_user_ids: Vec<String>,
    /// How long a token lives, in days.
    pub token_expire_days: u32,
    /// What a login does to the user's other tokens: 0 nothing (only the per-platform cap),
    /// 1 kicks the same platform (and all but one token on each other platform),
    /// 4 kicks the same platform class, 5 lets PCs coexist with one other device.
    pub multi_login_policy: u8,
    /// The most tokens one user holds on one platform (policy 0).
    pub max_tokens_per_platform: usize,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            secret: "openIM123".to_owned(),
            admin_user_ids: vec!["imAdmin".to_owned()],
            token_expire_days: 90,
            multi_login_policy: 1,
            max_tokens_per_platform: 30,
        }
    }
}

impl AuthConfig {
    /// The configured login policy (validated at load).
    pub fn login_policy(&self) -> crate::auth::LoginPolicy {
        crate::auth::LoginPolicy::from_number(self.multi_login_policy)
            .unwrap_or(crate::auth::LoginPolicy::KickSamePlatform)
    }
}

impl std::fmt::Debug for AuthConfig {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("AuthConfig")
            .field("secret", &"***")
            .field("admin_user_ids", &self.admin_user_ids)
            .field("token_expire_days", &self.token_expire_days)
            .field("multi_login_policy", &self.multi_login_policy)
            .field("max_tokens_per_platform", &self.max_tokens_per_platform)
            .finish()
    }
}

/// How logs are written.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase", try_from = "String")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

impl TryFrom<String> for LogFormat {
    type Error = String;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        match text.as_str() {
            "text" => Ok(Self::Text),
            "json" => Ok(Self::Json),
            _ => Err(format!("{text:?} is not a log format: use text or json")),
        }
    }
}

/// Logs, traces and metrics.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct TelemetryConfig {
    /// Log filter in `tracing` env-filter syntax, e.g. `info,jetim_streams=debug`.
    /// `RUST_LOG`, when set, wins.
    pub log: String,
    /// `text` or `json`.
    pub log_format: LogFormat,
    /// OTLP/HTTP endpoint for traces, e.g. `http://127.0.0.1:4318/v1/traces`; empty to export
    /// none.
    pub otlp_endpoint: String,
    /// The service name traces carry.
    pub service_name: String,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            log: "info".to_owned(),
            log_format: LogFormat::Text,
            otlp_endpoint: String::new(),
            service_name: "jetim".to_owned(),
        }
    }
}

/// A configuration that cannot be used; the message names the field and what is wrong.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file or an environment variable could not be read into the settings.
    #[error("config: {0}")]
    Load(String),
    /// A field has a value that cannot work.
    #[error("config: {field} = {value:?}: {problem}")]
    Invalid {
        /// The dotted field name, e.g. `nats.url`.
        field: &'static str,
        /// The value given (redacted if secret).
        value: String,
        /// What is wrong with it.
        problem: String,
    },
}

impl Config {
    /// Loads the file at `path` (if given; it must then exist), applies `JETIM_*` overrides
    /// from the process environment, and validates the result.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        Self::load_with_environment(path, std::env::vars())
    }

    /// [`Config::load`] with an explicit environment, for tests.
    pub fn load_with_environment(
        path: Option<&Path>,
        environment: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut builder = config::Config::builder();
        if let Some(path) = path {
            if !path.is_file() {
                return Err(ConfigError::Load(format!(
                    "file {} does not exist",
                    path.display()
                )));
            }
            builder = builder.add_source(
                config::File::from(path)
                    .format(config::FileFormat::Yaml)
                    .required(true),
            );
        }
        let overrides: HashMap<String, String> = environment
            .into_iter()
            .filter(|(name, _)| {
                name.strip_prefix(ENVIRONMENT_PREFIX)
                    .and_then(|rest| rest.strip_prefix('_'))
                    .is_some_and(|setting| setting.contains("__"))
            })
            .collect();
        builder = builder.add_source(
            config::Environment::with_prefix(ENVIRONMENT_PREFIX)
                .prefix_separator("_")
                .separator("__")
                .try_parsing(true)
                .list_separator(",")
                .with_list_parse_key("auth.admin_user_ids")
                .source(Some(overrides)),
        );
        let loaded: Self = builder
            .build()
            .and_then(config::Config::try_deserialize)
            .map_err(|error| ConfigError::Load(redact_password(&error.to_string())))?;
        loaded.validate()?;
        Ok(loaded)
    }

    /// Checks every value that the types alone do not.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for url in self.nats.url.split(',') {
            if let Err(error) = url.trim().parse::<async_nats::ServerAddr>() {
                return Err(invalid("nats.url", &self.nats.url, error));
            }
        }
        if !self.nats.credentials_file.is_empty()
            && !Path::new(&self.nats.credentials_file).is_file()
        {
            return Err(invalid(
                "nats.credentials_file",
                &self.nats.credentials_file,
                "no such file",
            ));
        }
        if !(1..=5).contains(&self.nats.stream_replicas) {
            return Err(invalid(
                "nats.stream_replicas",
                self.nats.stream_replicas,
                "must be between 1 and 5",
            ));
        }
        if self.nats.request_timeout_ms == 0 {
            return Err(invalid("nats.request_timeout_ms", 0, "must be above 0"));
        }
        if let Err(error) = tokio_postgres::Config::from_str(&self.postgres.url) {
            return Err(invalid(
                "postgres.url",
                self.postgres.redacted_url(),
                format!("not a Postgres URL ({error})"),
            ));
        }
        if self.postgres.pool_size == 0 {
            return Err(invalid("postgres.pool_size", 0, "must be at least 1"));
        }
        if self.postgres.connect_timeout_ms == 0 {
            return Err(invalid("postgres.connect_timeout_ms", 0, "must be above 0"));
        }
        if self.api.max_body_bytes < 1024 {
            return Err(invalid(
                "api.max_body_bytes",
                self.api.max_body_bytes,
                "must be at least 1024",
            ));
        }
        if self.gateway.max_frame_bytes < 1024 {
            return Err(invalid(
                "gateway.max_frame_bytes",
                self.gateway.max_frame_bytes,
                "must be at least 1024",
            ));
        }
        if self.gateway.write_queue == 0 {
            return Err(invalid("gateway.write_queue", 0, "must be at least 1"));
        }
        if self.gateway.read_timeout_secs == 0 {
            return Err(invalid("gateway.read_timeout_secs", 0, "must be above 0"));
        }
        if self.gateway.max_connections == 0 {
            return Err(invalid("gateway.max_connections", 0, "must be at least 1"));
        }
        if self.gateway.web_ping_secs == 0 {
            return Err(invalid("gateway.web_ping_secs", 0, "must be above 0"));
        }
        if self.presence.ttl_secs < 3 {
            return Err(invalid(
                "presence.ttl_secs",
                self.presence.ttl_secs,
                "must be at least 3",
            ));
        }
        if !self.push.offline_webhook_url.is_empty()
            && !self.push.offline_webhook_url.starts_with("http://")
        {
            return Err(invalid(
                "push.offline_webhook_url",
                &self.push.offline_webhook_url,
                "must be an http:// URL or empty (for https, put a TLS proxy in front)",
            ));
        }
        if !(1..=100).contains(&self.push.messages_per_push) {
            return Err(invalid(
                "push.messages_per_push",
                self.push.messages_per_push,
                "must be from 1 to 100",
            ));
        }
        if self.push.group_linger_ms > 1000 {
            return Err(invalid(
                "push.group_linger_ms",
                self.push.group_linger_ms,
                "must be from 0 to 1000",
            ));
        }
        if self.push.offline_webhook_timeout_ms == 0 {
            return Err(invalid(
                "push.offline_webhook_timeout_ms",
                0,
                "must be above 0",
            ));
        }
        if self.auth.secret.is_empty() {
            return Err(invalid("auth.secret", "", "must not be empty"));
        }
        if let Some(bad) = self
            .auth
            .admin_user_ids
            .iter()
            .find(|id| id.is_empty() || id.contains(':'))
        {
            return Err(invalid(
                "auth.admin_user_ids",
                bad,
                "a user ID must be non-empty and without ':'",
            ));
        }
        if self.auth.token_expire_days == 0 {
            return Err(invalid("auth.token_expire_days", 0, "must be at least 1"));
        }
        if crate::auth::LoginPolicy::from_number(self.auth.multi_login_policy).is_none() {
            return Err(invalid(
                "auth.multi_login_policy",
                self.auth.multi_login_policy,
                "must be 0, 1, 4 or 5",
            ));
        }
        if self.auth.max_tokens_per_platform == 0 {
            return Err(invalid(
                "auth.max_tokens_per_platform",
                0,
                "must be at least 1",
            ));
        }
        if let Err(error) = tracing_subscriber::EnvFilter::try_new(&self.telemetry.log) {
            return Err(invalid("telemetry.log", &self.telemetry.log, error));
        }
        let endpoint = &self.telemetry.otlp_endpoint;
        let is_http_url = endpoint.starts_with("http://") || endpoint.starts_with("https://");
        if !(endpoint.is_empty() || is_http_url) {
            return Err(invalid(
                "telemetry.otlp_endpoint",
                endpoint,
                "must be an http:// or https:// URL",
            ));
        }
        if self.telemetry.service_name.trim().is_empty() {
            return Err(invalid(
                "telemetry.service_name",
                &self.telemetry.service_name,
                "must not be empty",
            ));
        }
        Ok(())
    }
}

fn invalid(
    field: &'static str,
    value: impl std::fmt::Display,
    problem: impl std::fmt::Display,
) -> ConfigError {
    ConfigError::Invalid {
        field,
        value: value.to_string(),
        problem: problem.to_string(),
    }
}

/// Replaces the password of any `scheme://user:password@host` in `text` with `***`.
pub fn redact_password(text: &str) -> String {
    let mut redacted = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(scheme_end) = rest.find("://") {
        let (head, tail) = rest.split_at(scheme_end + 3);
        redacted.push_str(head);
        let authority_end = tail.find(['/', ' ', '"', '\'', '`']).unwrap_or(tail.len());
        let authority = &tail[..authority_end];
        match (authority.rfind('@'), authority.find(':')) {
            (Some(at), Some(colon)) if colon < at => {
                redacted.push_str(&authority[..=colon]);
                redacted.push_str("***");
                redacted.push_str(&authority[at..]);
            }
            _ => redacted.push_str(authority),
        }
        rest = &tail[authority_end..];
    }
    redacted.push_str(rest);
    redacted
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(environment: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::load_with_environment(
            None,
            environment
                .iter()
                .map(|(name, value)| ((*name).to_owned(), (*value).to_owned())),
        )
    }

    fn example_path() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../ops/jetim.yaml")
    }

    #[test]
    fn defaults_run_on_one_machine() {
        let config = load(&[]).unwrap();
        assert_eq!(config, Config::default());
        assert_eq!(config.api.listen.port(), 10002);
    }

    #[test]
    fn environment_overrides_name_section_and_key() {
        let config = load(&[
            ("JETIM_POSTGRES__URL", "postgres://jetim@db:5433/chat"),
            ("JETIM_NATS__STREAM_REPLICAS", "3"),
            ("JETIM_CONFIG", "/etc/jetim.yaml"),
            ("JETIM_STATE_DIR", "/tmp/state"),
            ("OTHER_VARIABLE", "ignored"),
        ])
        .unwrap();
        assert_eq!(config.postgres.url, "postgres://jetim@db:5433/chat");
        assert_eq!(config.nats.stream_replicas, 3);
    }

    #[test]
    fn the_example_file_documents_every_field_with_its_default() {
        let from_example = Config::load_with_environment(Some(&example_path()), []).unwrap();
        assert_eq!(from_example, Config::default());
        let text = std::fs::read_to_string(example_path()).unwrap();
        let defaults = serde_json::to_value(Config::default()).unwrap();
        for (section, fields) in defaults.as_object().unwrap() {
            assert!(text.contains(&format!("\n{section}:")), "section {section}");
            for field in fields.as_object().unwrap().keys() {
                assert!(text.contains(&format!("\n  {field}:")), "{section}.{field}");
            }
        }
    }

    #[test]
    fn a_bad_value_names_the_field_and_the_value() {
        let error = load(&[("JETIM_NATS__URL", "http://[::1")])
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with("config: nats.url = \"http://[::1\""),
            "{error}"
        );

        let error = load(&[("JETIM_NATS__STREAM_REPLICAS", "7")])
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("nats.stream_replicas = \"7\": must be between 1 and 5"),
            "{error}"
        );

        let error = load(&[("JETIM_API__LISTEN", "localhost")])
            .unwrap_err()
            .to_string();
        assert!(error.contains("api.listen"), "{error}");

        let error = load(&[("JETIM_TELEMETRY__LOG_FORMAT", "xml")])
            .unwrap_err()
            .to_string();
        assert!(error.contains("telemetry.log_format"), "{error}");

        let error = load(&[("JETIM_GATEWAY__DELIVERIES", "per-user")])
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("gateway.deliveries") && error.contains("use shared or per_user"),
            "{error}"
        );
        let config = load(&[("JETIM_GATEWAY__DELIVERIES", "per_user")]).unwrap();
        assert_eq!(config.gateway.deliveries, DeliverySubscription::PerUser);

        let error = load(&[("JETIM_PUSH__FANOUT", "group")])
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("push.fanout") && error.contains("use conversation or per_user"),
            "{error}"
        );
        let config = load(&[("JETIM_PUSH__FANOUT", "per_user")]).unwrap();
        assert_eq!(config.push.fanout, PushFanout::PerUser);
        assert_eq!(load(&[]).unwrap().push.fanout, PushFanout::Conversation);
        for bad in ["0", "101"] {
            let error = load(&[("JETIM_PUSH__MESSAGES_PER_PUSH", bad)])
                .unwrap_err()
                .to_string();
            assert!(
                error.contains("push.messages_per_push") && error.contains("from 1 to 100"),
                "{error}"
            );
        }
        let config = load(&[("JETIM_PUSH__MESSAGES_PER_PUSH", "1")]).unwrap();
        assert_eq!(config.push.messages_per_push, 1);
        let error = load(&[("JETIM_PUSH__GROUP_LINGER_MS", "1001")])
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("push.group_linger_ms") && error.contains("from 0 to 1000"),
            "{error}"
        );
        let config = load(&[("JETIM_PUSH__GROUP_LINGER_MS", "0")]).unwrap();
        assert_eq!(config.push.group_linger_ms, 0);

        let error = load(&[("JETIM_TELEMETRY__OTLP_ENDPOINT", "collector:4318")])
            .unwrap_err()
            .to_string();
        assert!(error.contains("telemetry.otlp_endpoint"), "{error}");
    }

    #[test]
    fn admins_come_from_a_comma_separated_variable_and_the_secret_is_hidden() {
        let config = load(&[
            ("JETIM_AUTH__ADMIN_USER_IDS", "imAdmin,ops"),
            ("JETIM_AUTH__SECRET", "s3cret-value"),
        ])
        .unwrap();
        assert_eq!(config.auth.admin_user_ids, ["imAdmin", "ops"]);
        assert!(!format!("{config:?}").contains("s3cret-value"));
        let error = load(&[("JETIM_AUTH__MULTI_LOGIN_POLICY", "2")])
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("auth.multi_login_policy = \"2\": must be 0, 1, 4 or 5"),
            "{error}"
        );
    }

    #[test]
    fn an_unknown_field_is_refused_by_name() {
        let error = load(&[("JETIM_API__LISTN", "0.0.0.0:1")])
            .unwrap_err()
            .to_string();
        assert!(error.contains("listn"), "{error}");
    }

    #[test]
    fn a_missing_file_is_named() {
        let error = Config::load_with_environment(Some(Path::new("/nonexistent/jetim.yaml")), [])
            .unwrap_err()
            .to_string();
        assert_eq!(error, "config: file /nonexistent/jetim.yaml does not exist");
    }

    #[test]
    fn passwords_never_appear_in_messages_or_debug_output() {
        let config = load(&[("JETIM_POSTGRES__URL", "postgres://jetim:hunter2@db/jetim")]).unwrap();
        assert!(!format!("{config:?}").contains("hunter2"));
        assert_eq!(
            config.postgres.redacted_url(),
            "postgres://jetim:***@db/jetim"
        );
        let error = load(&[
            ("JETIM_POSTGRES__URL", "postgres://jetim:hunter2@db/jetim"),
            ("JETIM_POSTGRES__POOL_SIZE", "0"),
        ])
        .unwrap_err()
        .to_string();
        assert!(!error.contains("hunter2"), "{error}");
    }
}
