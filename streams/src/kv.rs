//! KV buckets: shared state with a lifetime (token status, presence, leader locks).
//!
//! Keys are IDs escaped with [`crate::escape`], so any OpenIM ID is a valid key. Values are
//! JSON, readable with `nats kv get`.

use std::marker::PhantomData;

use async_nats::jetstream::{self, kv};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::escape::{TokenError, escape};

/// A KV operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum KvError {
    /// The key is not a valid ID.
    #[error("invalid key: {0}")]
    InvalidKey(#[from] TokenError),
    /// The value could not be (de)serialised.
    #[error("bucket {bucket}: value for {key} is not valid JSON: {error}")]
    Json {
        /// The bucket.
        bucket: String,
        /// The key.
        key: String,
        /// What serde said.
        error: serde_json::Error,
    },
    /// A compare-and-set lost: the key changed since it was read (or exists already).
    #[error("bucket {bucket}: {key} was changed by someone else")]
    Conflict {
        /// The bucket.
        bucket: String,
        /// The key.
        key: String,
    },
    /// Any other failure talking to NATS.
    #[error("bucket {bucket}: {error}")]
    Nats {
        /// The bucket.
        bucket: String,
        /// The client's error.
        error: String,
    },
}

/// Creates the bucket if missing, or updates it to `config`.
pub async fn ensure_bucket(
    jetstream: &jetstream::Context,
    config: kv::Config,
) -> Result<kv::Store, KvError> {
    let bucket = config.bucket.clone();
    jetstream
        .create_or_update_key_value(config)
        .await
        .map_err(|error| KvError::Nats {
            bucket,
            error: error.to_string(),
        })
}

/// How many times [`JsonBucket::modify`] tries before giving up on a contended key.
pub const MAX_MODIFY_ATTEMPTS: u64 = 32;

/// A bucket of JSON values of one type, keyed by escaped IDs.
#[derive(Clone)]
pub struct JsonBucket<T> {
    store: kv::Store,
    bucket: String,
    _value: PhantomData<fn() -> T>,
}

impl<T: Serialize + DeserializeOwned> JsonBucket<T> {
    /// Wraps an open bucket.
    pub fn new(store: kv::Store, bucket: &str) -> Self {
        Self {
            store,
            bucket: bucket.to_owned(),
            _value: PhantomData,
        }
    }

    fn nats_error(&self, error: &dyn std::fmt::Display) -> KvError {
        KvError::Nats {
            bucket: self.bucket.clone(),
            error: error.to_string(),
        }
    }

    fn encode(&self, id: &str, value: &T) -> Result<bytes::Bytes, KvError> {
        serde_json::to_vec(value)
            .map(bytes::Bytes::from)
            .map_err(|error| KvError::Json {
                bucket: self.bucket.clone(),
                key: id.to_owned(),
                error,
            })
    }

    /// The value and its revision, if the key holds one.
    pub async fn get(&self, id: &str) -> Result<Option<(T, u64)>, KvError> {
        let key = escape(id)?;
        let Some(entry) = self
            .store
            .entry(key.as_str())
            .await
            .map_err(|error| self.nats_error(&error))?
        else {
            return Ok(None);
        };
        if entry.operation != kv::Operation::Put {
            return Ok(None);
        }
        let value = serde_json::from_slice(&entry.value).map_err(|error| KvError::Json {
            bucket: self.bucket.clone(),
            key: id.to_owned(),
            error,
        })?;
        Ok(Some((value, entry.revision)))
    }

    /// Stores `value`, returning the new revision.
    pub async fn put(&self, id: &str, value: &T) -> Result<u64, KvError> {
        let key = escape(id)?;
        let bytes = self.encode(id, value)?;
        self.store
            .put(key.as_str(), bytes)
            .await
            .map_err(|error| self.nats_error(&error))
    }

    /// Stores `value` only if the key holds nothing; [`KvError::Conflict`] otherwise.
    pub async fn create(&self, id: &str, value: &T) -> Result<u64, KvError> {
        let key = escape(id)?;
        let bytes = self.encode(id, value)?;
        self.store
            .create(key.as_str(), bytes)
            .await
            .map_err(|error| match error.kind() {
                kv::CreateErrorKind::AlreadyExists => KvError::Conflict {
                    bucket: self.bucket.clone(),
                    key: id.to_owned(),
                },
                _ => self.nats_error(&error),
            })
    }

    /// Stores `value` only if the key is still at `revision`; [`KvError::Conflict`] otherwise.
    pub async fn update(&self, id: &str, value: &T, revision: u64) -> Result<u64, KvError> {
        let key = escape(id)?;
        let bytes = self.encode(id, value)?;
        self.store
            .update(key.as_str(), bytes, revision)
            .await
            .map_err(|error| match error.kind() {
                kv::UpdateErrorKind::WrongLastRevision => KvError::Conflict {
                    bucket: self.bucket.clone(),
                    key: id.to_owned(),
                },
                _ => self.nats_error(&error),
            })
    }

    /// Read-modify-write by compare-and-set: reads the value (the default when the key holds
    /// none), lets `change` edit it, and stores it only if nobody wrote the key in between,
    /// re-reading and retrying otherwise. `change` returns `None` to store nothing. After
    /// [`MAX_MODIFY_ATTEMPTS`] lost races it gives [`KvError::Conflict`].
    pub async fn modify<R>(
        &self,
        id: &str,
        mut change: impl FnMut(&mut T) -> Option<R>,
    ) -> Result<Option<R>, KvError>
    where
        T: Default,
    {
        for attempt in 0..MAX_MODIFY_ATTEMPTS {
            let (mut value, revision) = match self.get(id).await? {
                Some((value, revision)) => (value, Some(revision)),
                None => (T::default(), None),
            };
            let Some(outcome) = change(&mut value) else {
                return Ok(None);
            };
            let written = match revision {
                Some(revision) => self.update(id, &value, revision).await,
                None => self.create(id, &value).await,
            };
            match written {
                Ok(_) => return Ok(Some(outcome)),
                // Spread out writers that keep colliding.
                Err(KvError::Conflict { .. }) => {
                    tokio::time::sleep(std::time::Duration::from_millis(attempt)).await;
                }
                Err(error) => return Err(error),
            }
        }
        Err(KvError::Conflict {
            bucket: self.bucket.clone(),
            key: id.to_owned(),
        })
    }

    /// Removes the key (a delete marker; history keeps the old values).
    pub async fn delete(&self, id: &str) -> Result<(), KvError> {
        let key = escape(id)?;
        self.store
            .delete(key.as_str())
            .await
            .map_err(|error| self.nats_error(&error))
    }
}

/// The bucket of login tokens: one entry per user (key: the escaped userID) holding every
/// live token's state by platform. Token state is shared by every API and gateway instance,
/// so a kicked token is refused everywhere at once.
pub const TOKENS_BUCKET: &str = "IM_TOKENS";

/// The configuration of [`TOKENS_BUCKET`] (history 1: only the current table matters).
pub fn tokens_bucket_config(replicas: usize) -> kv::Config {
    kv::Config {
        bucket: TOKENS_BUCKET.to_owned(),
        description: "jetim: login token states per user".to_owned(),
        history: 1,
        storage: jetstream::stream::StorageType::File,
        num_replicas: replicas,
        ..Default::default()
    }
}

/// The bucket of REST send results (OpenIM's `check_msg_is_send_success`): key
/// `<userID>:<operationID>` escaped, value 2 (sent) or 3 (failed). Entries expire after a day.
pub const SEND_STATUS_BUCKET: &str = "IM_SEND_STATUS";

/// The configuration of [`SEND_STATUS_BUCKET`].
pub fn send_status_bucket_config(replicas: usize) -> kv::Config {
    kv::Config {
        bucket: SEND_STATUS_BUCKET.to_owned(),
        description: "jetim: results of REST sends by operationID, for a day".to_owned(),
        history: 1,
        max_age: std::time::Duration::from_secs(24 * 60 * 60),
        storage: jetstream::stream::StorageType::File,
        num_replicas: replicas,
        ..Default::default()
    }
}

/// The bucket of presence: one entry per user (key: the escaped userID) saying, per gateway
/// instance, which platforms the user is connected on and when that was last confirmed.
/// Gateways re-confirm their entries while the connections live; the bucket's age limit
/// removes the entries of a gateway that died.
pub const PRESENCE_BUCKET: &str = "IM_PRESENCE";

/// The configuration of [`PRESENCE_BUCKET`]; `ttl` is how long an unconfirmed entry lives.
pub fn presence_bucket_config(replicas: usize, ttl: std::time::Duration) -> kv::Config {
    kv::Config {
        bucket: PRESENCE_BUCKET.to_owned(),
        description: "jetim: online platforms per user, per gateway".to_owned(),
        history: 1,
        max_age: ttl,
        storage: jetstream::stream::StorageType::File,
        num_replicas: replicas,
        ..Default::default()
    }
}

/// The bucket of users' REST status subscriptions (`/user/subscribe_users_status`): key the
/// escaped userID, value the IDs they follow.
pub const STATUS_SUBSCRIPTIONS_BUCKET: &str = "IM_STATUS_SUBSCRIPTIONS";

/// The configuration of [`STATUS_SUBSCRIPTIONS_BUCKET`].
pub fn status_subscriptions_bucket_config(replicas: usize) -> kv::Config {
    kv::Config {
        bucket: STATUS_SUBSCRIPTIONS_BUCKET.to_owned(),
        description: "jetim: whose online status each user follows".to_owned(),
        history: 1,
        storage: jetstream::stream::StorageType::File,
        num_replicas: replicas,
        ..Default::default()
    }
}
