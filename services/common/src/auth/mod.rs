//! Login tokens, as OpenIM issues and checks them.
//!
//! - [`platform`]: platform IDs and the classes the login policies group them in.
//! - [`policy`]: the multi-login policies, a pure function over a user's token table.
//! - [`jwt`]: the HS256 token with OpenIM's claims, signed with the configured secret.
//! - [`TokenService`]: issuing (with the policy applied), verifying and kicking, with token
//!   state in the `IM_TOKENS` KV bucket so every API and gateway instance agrees at once.
//!
//! Verification follows OpenIM's order: the JWT itself (malformed 1503, expired 1501, not yet
//! valid 1504, anything else 1505), then the token's state for its user and platform (no table
//! 1507, kicked 1506, unknown to a non-empty table 1507).

pub mod jwt;
pub mod platform;
pub mod policy;

use jetim_streams::kv::{JsonBucket, KvError};
use sha2::Digest as _;

use crate::config::AuthConfig;
pub use jwt::Claims;
pub use platform::Platform;
pub use policy::{LoginPolicy, TokenState, TokenTable};

/// Why a token is refused, or could not be checked.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// 1501.
    #[error("token expired")]
    Expired,
    /// 1503.
    #[error("token is malformed")]
    Malformed,
    /// 1504.
    #[error("token is not valid yet")]
    NotValidYet,
    /// 1505, with the reason (a bad signature, an unknown state).
    #[error("{0}")]
    Unknown(String),
    /// 1506.
    #[error("token has been kicked")]
    Kicked,
    /// 1507.
    #[error("token does not exist")]
    NotExist,
    /// The token store could not be reached.
    #[error("token store: {0}")]
    Store(#[from] KvError),
}

pub use crate::clock::now_seconds;

/// A token's short fingerprint: how token tables and session control name a token without
/// holding it.
pub fn fingerprint(token: &str) -> String {
    sha2::Sha256::digest(token.as_bytes())
        .iter()
        .take(16)
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// A freshly issued token.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    /// The token text.
    pub token: String,
    /// Its lifetime in seconds (OpenIM's `expireTimeSeconds` on issue).
    pub lifetime_seconds: i64,
}

/// Issues, verifies and kicks tokens.
#[derive(Clone)]
pub struct TokenService {
    config: AuthConfig,
    keys: jwt::Keys,
    tables: JsonBucket<TokenTable>,
}

impl TokenService {
    /// Opens (creating if needed) the token bucket.
    pub async fn open(
        jetstream: &async_nats::jetstream::Context,
        config: &AuthConfig,
        replicas: usize,
    ) -> Result<Self, KvError> {
        let store = jetim_streams::kv::ensure_bucket(
            jetstream,
            jetim_streams::kv::tokens_bucket_config(replicas),
        )
        .await?;
        Ok(Self {
            keys: jwt::Keys::new(&config.secret),
            config: config.clone(),
            tables: JsonBucket::new(store, jetim_streams::kv::TOKENS_BUCKET),
        })
    }

    /// The auth settings.
    pub fn config(&self) -> &AuthConfig {
        &self.config
    }

    /// Whether `user_id` is one of the configured admins.
    pub fn is_admin(&self, user_id: &str) -> bool {
        self.config
            .admin_user_ids
            .iter()
            .any(|admin| admin == user_id)
    }

    /// Issues a token for `user_id` on `platform`, applying the multi-login policy to the
    /// user's other tokens in the same compare-and-set.
    pub async fn issue(
        &self,
        user_id: &str,
        platform: Platform,
    ) -> Result<IssuedToken, TokenError> {
        let lifetime_seconds = i64::from(self.config.token_expire_days) * 86_400;
        let now = now_seconds();
        let claims = Claims {
            user_id: user_id.to_owned(),
            platform_id: platform.id(),
            exp: now + lifetime_seconds,
            // OpenIM backdates iat by 5 s against clock skew.
            iat: now - 5,
            jti: nuid::next().to_string(),
        };
        let token = self.keys.sign(&claims)?;
        let entry = fingerprint(&token);
        self.change_table(user_id, |table| {
            table.admit(
                platform,
                &entry,
                claims.exp,
                self.config.login_policy(),
                self.config.max_tokens_per_platform,
                now,
            );
        })
        .await?;
        Ok(IssuedToken {
            token,
            lifetime_seconds,
        })
    }

    /// Checks a token and returns its claims.
    pub async fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        let claims = self.keys.verify(token, now_seconds())?;
        let Some((table, _)) = self.tables.get(&claims.user_id).await? else {
            return Err(TokenError::NotExist);
        };
        match table.state_of(claims.platform_id, &fingerprint(token), now_seconds()) {
            Some(TokenState::Normal) => Ok(claims),
            Some(TokenState::Kicked) => Err(TokenError::Kicked),
            Some(TokenState::Invalid) => Err(TokenError::Unknown("token is invalid".to_owned())),
            None => Err(TokenError::NotExist),
        }
    }

    /// Marks every token of `user_id` on `platform` kicked (force logout). Returns how many.
    pub async fn kick_platform(
        &self,
        user_id: &str,
        platform: Platform,
    ) -> Result<usize, TokenError> {
        let mut kicked = 0;
        self.change_table(user_id, |table| kicked = table.kick_platform(platform.id()))
            .await?;
        Ok(kicked)
    }

    /// Marks the named tokens of `user_id` kicked (connections the login policy replaced).
    pub async fn kick_tokens(
        &self,
        user_id: &str,
        tokens: &[(i32, String)],
    ) -> Result<(), TokenError> {
        self.change_table(user_id, |table| {
            for (platform_id, token) in tokens {
                table.kick_token(*platform_id, token);
            }
        })
        .await
    }

    async fn change_table(
        &self,
        user_id: &str,
        mut change: impl FnMut(&mut TokenTable),
    ) -> Result<(), TokenError> {
        self.tables
            .modify(user_id, |table| {
                change(table);
                Some(())
            })
            .await?;
        Ok(())
    }
}
