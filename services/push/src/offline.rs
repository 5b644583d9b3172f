//! Offline push: recipients with no online connection, handed to a provider.
//!
//! A recipient qualifies when the message allows it (`offlinePush`, missing means true),
//! they are not the sender, no gateway reports them online, their global receive option is
//! 0 and their own setting for the conversation is 0 (1 and 2 both mean "no push").
//!
//! The provider today is a webhook: one POST per message with every qualifying recipient,
//! body [`WebhookBody`] as JSON. The lookups and the call run in the background, at most
//! [`MAX_CALLS_IN_FLIGHT`] messages at once; when that many are pending, further messages
//! are dropped from offline push and counted rather than queued without bound.

use std::sync::Arc;
use std::time::Duration;

use jetim_common::config::PushConfig;
use jetim_messaging::options::{OFFLINE_PUSH, Options};
use jetim_readmodel::{conversations, users};
use jetim_schemas::events::msg::MsgSent;
use serde::Serialize;
use tokio::sync::Semaphore;

use crate::PushState;

/// The most messages whose offline push is in flight (lookups and webhook call).
pub const MAX_CALLS_IN_FLIGHT: usize = 64;

/// What the webhook receives.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct WebhookBody {
    /// The recipients to notify.
    #[serde(rename = "userIDs")]
    pub user_ids: Vec<String>,
    /// The conversation.
    #[serde(rename = "conversationID")]
    pub conversation_id: String,
    /// The message's seq.
    pub seq: u64,
    /// Its serverMsgID.
    #[serde(rename = "serverMsgID")]
    pub server_msg_id: String,
    /// Its clientMsgID.
    #[serde(rename = "clientMsgID")]
    pub client_msg_id: String,
    /// The sender.
    #[serde(rename = "sendID")]
    pub send_id: String,
    /// The sender's nickname as sent.
    pub sender_nickname: String,
    /// The group, for group messages.
    #[serde(rename = "groupID")]
    pub group_id: String,
    /// OpenIM session type.
    pub session_type: i32,
    /// OpenIM content type.
    pub content_type: i32,
    /// Milliseconds since the epoch.
    pub send_time: i64,
    /// The sender's offline-push hints (title, desc, ex, iOS sound and badge).
    pub title: String,
    /// See `title`.
    pub desc: String,
    /// See `title`.
    pub ex: String,
    /// See `title`.
    #[serde(rename = "iOSPushSound")]
    pub ios_push_sound: String,
    /// See `title`.
    #[serde(rename = "iOSBadgeCount")]
    pub ios_badge_count: bool,
}

impl WebhookBody {
    /// The body for `message` and `user_ids`.
    pub fn new(message: &MsgSent, user_ids: Vec<String>) -> Self {
        let hints = message.offline_push.clone().unwrap_or_default();
        Self {
            user_ids,
            conversation_id: message.conversation_id.clone(),
            seq: message.seq,
            server_msg_id: message.server_msg_id.clone(),
            client_msg_id: message.client_msg_id.clone(),
            send_id: message.send_id.clone(),
            sender_nickname: message.sender_nickname.clone(),
            group_id: message.group_id.clone(),
            session_type: message.session_type,
            content_type: message.content_type,
            send_time: message.send_time,
            title: hints.title,
            desc: hints.desc,
            ex: hints.ex,
            ios_push_sound: hints.ios_push_sound,
            ios_badge_count: hints.ios_badge_count,
        }
    }
}

/// The offline-push provider.
#[derive(Clone)]
pub struct OfflinePush {
    webhook: Option<(reqwest::Client, String)>,
    slots: Arc<Semaphore>,
}

impl OfflinePush {
    /// The provider `config` names (none when the webhook URL is empty).
    pub fn new(config: &PushConfig) -> anyhow::Result<Self> {
        let webhook = if config.offline_webhook_url.is_empty() {
            None
        } else {
            let client = reqwest::Client::builder()
                .timeout(Duration::from_millis(config.offline_webhook_timeout_ms))
                .build()?;
            Some((client, config.offline_webhook_url.clone()))
        };
        Ok(Self {
            webhook,
            slots: Arc::new(Semaphore::new(MAX_CALLS_IN_FLIGHT)),
        })
    }

    /// Whether a provider is configured.
    pub fn is_enabled(&self) -> bool {
        self.webhook.is_some()
    }

    /// In the background, finds who among `users` qualifies and, if anyone does, calls the
    /// provider, so the lookups never hold up the pushes behind this message.
    pub fn consider(&self, state: &PushState, message: &MsgSent, users: &[String]) {
        let Some((client, url)) = self.webhook.clone() else {
            return;
        };
        let Ok(slot) = Arc::clone(&self.slots).try_acquire_owned() else {
            metrics::counter!("jetim_offline_push_dropped_total").increment(1);
            tracing::warn!("offline push dropped: too many offline pushes pending");
            return;
        };
        let (state, message, users) = (state.clone(), message.clone(), users.to_vec());
        tokio::spawn(async move {
            let user_ids = match qualifying(&state, &message, &users).await {
                Ok(user_ids) => user_ids,
                Err(error) => {
                    tracing::warn!(%error, "offline push skipped: a lookup failed");
                    return;
                }
            };
            if user_ids.is_empty() {
                return;
            }
            let outcome = client
                .post(&url)
                .json(&WebhookBody::new(&message, user_ids))
                .send()
                .await
                .and_then(reqwest::Response::error_for_status);
            match outcome {
                Ok(_) => metrics::counter!("jetim_offline_pushes_total").increment(1),
                Err(error) => {
                    metrics::counter!("jetim_offline_push_failures_total").increment(1);
                    tracing::warn!(%error, "offline push webhook failed");
                }
            }
            drop(slot);
        });
    }
}

async fn qualifying(
    state: &PushState,
    message: &MsgSent,
    users: &[String],
) -> anyhow::Result<Vec<String>> {
    if !Options(message.options.clone()).is(OFFLINE_PUSH) {
        return Ok(Vec::new());
    }
    let others: Vec<String> = users
        .iter()
        .filter(|user| **user != message.send_id)
        .cloned()
        .collect();
    let online = state.presence.online_many(&others).await?;
    let offline: Vec<String> = others
        .into_iter()
        .zip(online)
        .filter(|(_, platforms)| platforms.is_empty())
        .map(|(user_id, _)| user_id)
        .collect();
    if offline.is_empty() {
        return Ok(offline);
    }
    let registered = users::find(&state.db, &offline).await?;
    let mut qualifying = Vec::new();
    for user in registered {
        if user.global_recv_msg_opt != 0 {
            continue;
        }
        let own = conversations::list(
            &state.db,
            &user.user_id,
            Some(std::slice::from_ref(&message.conversation_id)),
        )
        .await?;
        if own.first().is_none_or(|row| row.recv_msg_opt == 0) {
            qualifying.push(user.user_id);
        }
    }
    Ok(qualifying)
}
