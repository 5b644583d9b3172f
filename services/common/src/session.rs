//! Session control between services and gateways, on core NATS `im.session.<userID>`.
//!
//! Every gateway holding a connection of the user listens there. A gateway announces each
//! new connection, so the others (and itself) can apply the multi-login policy to the older
//! ones; the API announces force logouts. Messages are JSON, readable with `nats sub`.

use serde::{Deserialize, Serialize};

/// A session-control message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SessionControl {
    /// A connection was accepted; older connections the login policy says it replaces get
    /// 2002 and are closed.
    Connected {
        /// The gateway instance holding it.
        gateway: String,
        /// The connection's number on that gateway.
        connection: u64,
        /// Its platform.
        platform_id: i32,
        /// Its token's fingerprint (a reconnect with the same token kicks nobody).
        token: String,
    },
    /// `/auth/force_logout`: every connection of the user on the platform gets 2002 and is
    /// closed.
    ForceLogout {
        /// The platform.
        platform_id: i32,
    },
}

/// A failure to announce.
#[derive(Debug, thiserror::Error)]
#[error("session control for {user_id}: {error}")]
pub struct AnnounceError {
    user_id: String,
    error: String,
}

/// Publishes `control` to `im.session.<user_id>` and flushes, so it is on its way when this
/// returns.
pub async fn announce(
    client: &async_nats::Client,
    user_id: &str,
    control: &SessionControl,
) -> Result<(), AnnounceError> {
    let failed = |error: &dyn std::fmt::Display| AnnounceError {
        user_id: user_id.to_owned(),
        error: error.to_string(),
    };
    let subject = jetim_streams::subject::live(jetim_streams::subject::LiveKind::Session, user_id)
        .map_err(|error| failed(&error))?;
    let body = serde_json::to_vec(control).map_err(|error| failed(&error))?;
    client
        .publish(subject, body.into())
        .await
        .map_err(|error| failed(&error))?;
    client.flush().await.map_err(|error| failed(&error))
}

#[cfg(test)]
mod tests {
    use super::SessionControl;

    #[test]
    fn controls_read_as_tagged_json() {
        let control = SessionControl::ForceLogout { platform_id: 5 };
        let text = serde_json::to_string(&control).unwrap();
        assert_eq!(text, r#"{"kind":"force_logout","platform_id":5}"#);
        assert_eq!(
            serde_json::from_str::<SessionControl>(&text).unwrap(),
            control
        );
    }
}
