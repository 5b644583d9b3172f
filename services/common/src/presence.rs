//! Who is online: the `IM_PRESENCE` bucket, shared by every gateway.
//!
//! One entry per user says, per gateway instance, the platforms the user has connections on
//! there and when the gateway last confirmed it. A gateway writes its part when a user's
//! platforms on it change and confirms every part it holds every third of the TTL. A part
//! older than the TTL no longer counts, and the bucket's age limit drops entries nobody
//! confirms, so the users of a gateway that died go offline on their own.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use futures::{StreamExt as _, TryStreamExt as _};

use jetim_streams::kv::{self, JsonBucket, KvError};
use serde::{Deserialize, Serialize};

/// One gateway's part of a user's presence.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GatewayPart {
    /// The platforms with at least one connection on that gateway, ascending.
    pub platforms: Vec<i32>,
    /// When the gateway last confirmed it, seconds since the epoch.
    pub confirmed: i64,
    /// Per platform, the fingerprint of each connection's token (never a token itself).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tokens: BTreeMap<i32, Vec<String>>,
}

/// A user's presence entry: gateway instance → its part.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PresenceEntry {
    /// The parts, by gateway instance ID.
    pub gateways: BTreeMap<String, GatewayPart>,
}

impl PresenceEntry {
    /// The platforms the user is online on, ascending and distinct, counting only parts
    /// confirmed within `ttl_secs` of `now`.
    pub fn online_platforms(&self, now: i64, ttl_secs: i64) -> Vec<i32> {
        let platforms: BTreeSet<i32> = self
            .gateways
            .values()
            .filter(|part| now - part.confirmed < ttl_secs)
            .flat_map(|part| part.platforms.iter().copied())
            .collect();
        platforms.into_iter().collect()
    }

    /// Per platform the user is online on, the token fingerprints of their connections,
    /// counting only parts confirmed within `ttl_secs` of `now`.
    pub fn online_tokens(&self, now: i64, ttl_secs: i64) -> BTreeMap<i32, Vec<String>> {
        let mut tokens: BTreeMap<i32, Vec<String>> = BTreeMap::new();
        for part in self
            .gateways
            .values()
            .filter(|part| now - part.confirmed < ttl_secs)
        {
            for platform in &part.platforms {
                let of_platform = tokens.entry(*platform).or_default();
                of_platform.extend(part.tokens.get(platform).into_iter().flatten().cloned());
            }
        }
        tokens
    }

    /// Sets (or, with no platforms, removes) one gateway's part, and forgets parts nobody
    /// confirmed within the TTL.
    pub fn set_part(&mut self, gateway: &str, platforms: &[i32], now: i64, ttl_secs: i64) {
        self.set_connections(
            gateway,
            &platforms
                .iter()
                .map(|platform| (*platform, ""))
                .collect::<Vec<_>>(),
            now,
            ttl_secs,
        );
    }

    /// As [`Self::set_part`], from the gateway's connections: (platform, token
    /// fingerprint) each; an empty fingerprint is not kept.
    pub fn set_connections(
        &mut self,
        gateway: &str,
        connections: &[(i32, &str)],
        now: i64,
        ttl_secs: i64,
    ) {
        let platforms: Vec<i32> = connections.iter().map(|(platform, _)| *platform).collect();
        self.gateways
            .retain(|_, part| now - part.confirmed < ttl_secs);
        if platforms.is_empty() {
            self.gateways.remove(gateway);
        } else {
            let distinct: BTreeSet<i32> = platforms.iter().copied().collect();
            let mut tokens: BTreeMap<i32, Vec<String>> = BTreeMap::new();
            for (platform, fingerprint) in connections {
                if !fingerprint.is_empty() {
                    tokens
                        .entry(*platform)
                        .or_default()
                        .push((*fingerprint).to_owned());
                }
            }
            self.gateways.insert(
                gateway.to_owned(),
                GatewayPart {
                    platforms: distinct.into_iter().collect(),
                    confirmed: now,
                    tokens,
                },
            );
        }
    }
}

/// How many presence reads [`PresenceStore::online_many`] has in flight.
pub const CONCURRENT_READS: usize = 32;

/// Reads and writes presence.
#[derive(Clone)]
pub struct PresenceStore {
    bucket: JsonBucket<PresenceEntry>,
    ttl_secs: i64,
}

impl PresenceStore {
    /// Opens (creating if needed) the bucket.
    pub async fn open(
        jetstream: &async_nats::jetstream::Context,
        replicas: usize,
        ttl: Duration,
    ) -> Result<Self, KvError> {
        let store = kv::ensure_bucket(jetstream, kv::presence_bucket_config(replicas, ttl)).await?;
        Ok(Self {
            bucket: JsonBucket::new(store, kv::PRESENCE_BUCKET),
            ttl_secs: i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX),
        })
    }

    /// How long a confirmation stays good.
    pub fn ttl(&self) -> Duration {
        Duration::from_secs(u64::try_from(self.ttl_secs).unwrap_or(0))
    }

    /// The platforms `user_id` is online on, ascending.
    pub async fn online(&self, user_id: &str) -> Result<Vec<i32>, KvError> {
        Ok(self
            .bucket
            .get(user_id)
            .await?
            .map(|(entry, _)| entry.online_platforms(crate::auth::now_seconds(), self.ttl_secs))
            .unwrap_or_default())
    }

    /// The platforms each of `user_ids` is online on, in order; the reads run concurrently
    /// (up to [`CONCURRENT_READS`] at a time) rather than one round trip after another.
    pub async fn online_many(&self, user_ids: &[String]) -> Result<Vec<Vec<i32>>, KvError> {
        // Owned IDs: futures borrowing the slice's items trip up `Send` checks in callers.
        futures::stream::iter(user_ids.iter().cloned())
            .map(|user_id| async move { self.online(&user_id).await })
            .buffered(CONCURRENT_READS)
            .try_collect()
            .await
    }

    /// Per platform `user_id` is online on, the token fingerprints of their connections.
    pub async fn online_tokens(
        &self,
        user_id: &str,
    ) -> Result<BTreeMap<i32, Vec<String>>, KvError> {
        Ok(self
            .bucket
            .get(user_id)
            .await?
            .map(|(entry, _)| entry.online_tokens(crate::auth::now_seconds(), self.ttl_secs))
            .unwrap_or_default())
    }

    /// Writes `gateway`'s part of `user_id`'s presence (confirming it) and returns the
    /// user's platforms before and after.
    pub async fn set(
        &self,
        user_id: &str,
        gateway: &str,
        platforms: &[i32],
    ) -> Result<(Vec<i32>, Vec<i32>), KvError> {
        let connections: Vec<(i32, &str)> =
            platforms.iter().map(|platform| (*platform, "")).collect();
        self.set_connections(user_id, gateway, &connections).await
    }

    /// As [`Self::set`], from the gateway's connections: (platform, token fingerprint) each.
    pub async fn set_connections(
        &self,
        user_id: &str,
        gateway: &str,
        connections: &[(i32, &str)],
    ) -> Result<(Vec<i32>, Vec<i32>), KvError> {
        let changed = self
            .bucket
            .modify(user_id, |entry| {
                let now = crate::clock::now_seconds();
                let before = entry.online_platforms(now, self.ttl_secs);
                entry.set_connections(gateway, connections, now, self.ttl_secs);
                Some((before, entry.online_platforms(now, self.ttl_secs)))
            })
            .await?;
        Ok(changed.unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::PresenceEntry;

    #[test]
    fn parts_add_up_and_stale_ones_do_not_count() {
        let mut entry = PresenceEntry::default();
        entry.set_part("gw-a", &[5, 1, 5], 1000, 90);
        entry.set_part("gw-b", &[2], 1010, 90);
        assert_eq!(entry.online_platforms(1020, 90), vec![1, 2, 5]);
        assert_eq!(entry.gateways["gw-a"].platforms, vec![1, 5]);
        // gw-a stops confirming: after the TTL only gw-b counts.
        assert_eq!(entry.online_platforms(1090, 90), vec![2]);
        // A write forgets the stale part.
        entry.set_part("gw-b", &[2, 3], 1095, 90);
        assert_eq!(entry.gateways.len(), 1);
        // No platforms left on a gateway: its part goes.
        entry.set_part("gw-b", &[], 1096, 90);
        assert!(entry.gateways.is_empty());
        assert!(entry.online_platforms(1096, 90).is_empty());
    }

    #[test]
    fn token_fingerprints_add_up_per_platform_and_stale_ones_do_not_count() {
        let mut entry = PresenceEntry::default();
        entry.set_connections("gw-a", &[(5, "f1"), (5, "f2"), (1, "f3")], 1000, 90);
        entry.set_connections("gw-b", &[(5, "f4"), (2, "")], 1010, 90);
        let tokens = entry.online_tokens(1020, 90);
        assert_eq!(tokens[&5], ["f1", "f2", "f4"]);
        assert_eq!(tokens[&1], ["f3"]);
        assert!(tokens[&2].is_empty(), "online, with no fingerprint kept");
        assert_eq!(
            entry
                .online_tokens(1095, 90)
                .keys()
                .copied()
                .collect::<Vec<_>>(),
            [2, 5]
        );
    }
}
