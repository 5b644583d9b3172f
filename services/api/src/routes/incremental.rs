//! Incremental sync over the version logs (OpenIM's `get_incremental_*` and `get_full_*_ids`
//! routes), shared by conversations, friends, blocks, joined groups and group members: when a client must start over, and
//! which elements changed since its version.

use jetim_readmodel::versions::{self, ChangeState, GROUP_ITSELF, Log, SORT_MARKER};
use serde::Deserialize;

use super::args::check_user_id;
use crate::ApiState;
use crate::openim::{ApiError, Authed};

/// How many changes an incremental answer carries before it says "full" instead.
const MAX_CHANGES: i64 = 200;

/// A `get_incremental_*` request: the client's copy of the user's log.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct IncrementalRequest {
    #[serde(rename = "userID")]
    pub(crate) user_id: String,
    #[serde(rename = "versionID")]
    version_id: String,
    version: i64,
}

/// A `get_full_*_ids` request.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct FullIdsRequest {
    #[serde(rename = "userID")]
    pub(crate) user_id: String,
    #[serde(rename = "idHash")]
    pub(crate) id_hash: u64,
}

/// The elements changed since the client's version, each once, by its latest change.
#[derive(Debug, Default)]
pub(crate) struct Changes {
    pub(crate) deleted: Vec<String>,
    pub(crate) inserted: Vec<String>,
    pub(crate) updated: Vec<String>,
}

impl Changes {
    /// The elements to fetch at their current state: inserted, then updated.
    pub(crate) fn present(&self) -> Vec<String> {
        self.inserted.iter().chain(&self.updated).cloned().collect()
    }
}

/// What a log says since the client's version.
#[derive(Debug)]
pub(crate) struct Delta {
    /// The log's ID now.
    pub(crate) version_id: String,
    /// The log's version now.
    pub(crate) version: i64,
    /// `None`: the client must download everything again (unknown or other log, a version
    /// ahead of the log's, or too many changes).
    pub(crate) changes: Option<Changes>,
    /// The version of the last order change (a pin), 0 if none since the client's version.
    pub(crate) sort_version: i64,
    /// A member log only: the group's own info changed since the client's version.
    pub(crate) group_changed: bool,
}

fn read_failed(error: &jetim_readmodel::ReadModelError) -> ApiError {
    ApiError::internal("reading a version log", error)
}

/// The owner's log (ID, version); empty and 0 before its first change.
pub(crate) async fn current(
    state: &ApiState,
    log: Log,
    owner: &str,
) -> Result<(String, i64), ApiError> {
    Ok(versions::current(&state.db, log, owner)
        .await
        .map_err(|error| read_failed(&error))?
        .unwrap_or_default())
}

/// Checks the request (a valid user ID; the caller is that user or an admin) and reads what
/// changed in the user's `log` since the client's version.
pub(crate) async fn delta(
    state: &ApiState,
    request: &Authed<IncrementalRequest>,
    log: Log,
) -> Result<Delta, ApiError> {
    let body = &request.body;
    check_user_id("userID", &body.user_id)?;
    request.caller.require_self_or_admin(&body.user_id)?;
    delta_of(state, log, &body.user_id, &body.version_id, body.version).await
}

/// What changed in `owner`'s `log` since the client's (`version_id`, `version`).
pub(crate) async fn delta_of(
    state: &ApiState,
    log: Log,
    owner: &str,
    client_version_id: &str,
    client_version: i64,
) -> Result<Delta, ApiError> {
    let (version_id, version) = current(state, log, owner).await?;
    let mut delta = Delta {
        version_id,
        version,
        changes: None,
        sort_version: 0,
        group_changed: false,
    };
    if client_version <= 0 || client_version_id != delta.version_id || client_version > version {
        return Ok(delta);
    }
    let found = versions::changes_after(&state.db, log, owner, client_version, MAX_CHANGES)
        .await
        .map_err(|error| read_failed(&error))?;
    if i64::try_from(found.len()).unwrap_or(i64::MAX) > MAX_CHANGES {
        return Ok(delta);
    }
    let mut changes = Changes::default();
    for (element, change, at) in found {
        if element == SORT_MARKER {
            delta.sort_version = at;
            continue;
        }
        if log == Log::GroupMembers && element == GROUP_ITSELF {
            delta.group_changed = true;
            continue;
        }
        match change {
            ChangeState::Delete => changes.deleted.push(element),
            ChangeState::Insert => changes.inserted.push(element),
            ChangeState::Update => changes.updated.push(element),
        }
    }
    delta.changes = Some(changes);
    Ok(delta)
}

/// A `get_full_*_ids` reply: the log's version and the owner's IDs (under the route's own
/// key: `userIDs`, `groupIDs`, `conversationIDs`), or `equal` and `null` IDs when the client's
/// `idHash` already matches them.
#[derive(Debug)]
pub struct FullIds {
    version: i64,
    version_id: String,
    equal: bool,
    key: &'static str,
    ids: Vec<String>,
}

impl serde::Serialize for FullIds {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct as _;
        let mut reply = serializer.serialize_struct("FullIds", 4)?;
        reply.serialize_field("version", &self.version)?;
        reply.serialize_field("versionID", &self.version_id)?;
        reply.serialize_field("equal", &self.equal)?;
        reply.serialize_field(self.key, &(!self.ids.is_empty()).then_some(&self.ids))?;
        reply.end()
    }
}

/// Answers a `get_full_*_ids` request for `owner`'s `log`: the IDs `ids` reads (under `key`),
/// unless the client's hash already matches them.
pub(crate) async fn full_ids(
    state: &ApiState,
    (log, owner): (Log, &str),
    client_hash: u64,
    key: &'static str,
    ids: impl Future<Output = Result<Vec<String>, ApiError>>,
) -> Result<FullIds, ApiError> {
    let ((version_id, version), ids) = futures::try_join!(current(state, log, owner), ids)?;
    let equal = id_hash(&ids) == client_hash;
    Ok(FullIds {
        version,
        version_id,
        equal,
        key,
        ids: if equal { Vec::new() } else { ids },
    })
}

/// Takes the records of `ids` out of `records` (keyed by element ID), in the order of `ids`.
pub(crate) fn take<T>(
    records: &mut std::collections::BTreeMap<String, T>,
    ids: &[String],
) -> Vec<T> {
    ids.iter().filter_map(|id| records.remove(id)).collect()
}

/// OpenIM's `idHash`: the first 8 bytes, big-endian, of the MD5 of the IDs as a JSON array;
/// an empty list hashes to 0.
pub fn id_hash(ids: &[String]) -> u64 {
    use md5::Digest as _;
    if ids.is_empty() {
        return 0;
    }
    let json = serde_json::to_string(ids).unwrap_or_default();
    let digest = md5::Md5::digest(json.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first)
}

#[cfg(test)]
mod tests {
    use super::id_hash;

    #[test]
    fn the_id_hash_is_md5_of_the_json_array_big_endian() {
        assert_eq!(id_hash(&[]), 0);
        // md5 of ["a"] is 4c96bbc0e2390918dd50ef8e7eaff6e2; the first 8 bytes, big-endian.
        let hash = id_hash(&["a".to_owned()]);
        assert_eq!(hash, 0x4c96_bbc0_e239_0918);
        assert_ne!(id_hash(&["a".to_owned(), "b".to_owned()]), hash);
    }
}
