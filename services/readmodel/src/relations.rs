//! The relations projection, version 1: friend requests (`friend_requests_v1`), friendships
//! (`friends_v1`), blocks (`blacks_v1`) and the friend and black version logs.
//!
//! Events change rows partly (a remark, a pin) and one event can touch rows of two owners (an
//! accepted request), so a batch is applied by load, fold, store: the rows the batch touches
//! are read in one query per table, the events are folded over them in stream order (an event
//! at or below a row's stream sequence is skipped, which makes a replay change nothing), and the
//! changed rows are written back in one statement per table.

use std::collections::{BTreeMap, BTreeSet};

use deadpool_postgres::{GenericClient, Pool};
use jetim_schemas::event::{DecodeError, Event as _};
use jetim_schemas::events::relation::{
    BlackAdded, BlackRemoved, FriendDeleted, FriendRequestHandled, FriendRequested,
    FriendsImported, FriendsUpdated, add_source,
};
use jetim_schemas::events::user::UserUpdated;
use jetim_streams::RecordedEvent;
use jetim_streams::consume::{BatchHandler, DurableSpec, HandleError};
use jetim_streams::subject::{USER_STREAM, UserKind, every_user};
use tokio_postgres::Row;

use crate::versions::{ChangeState, Log, SORT_MARKER, record_changes};
use crate::{ReadModelError, projection};

/// The projection's name in the registry.
pub const NAME: &str = "relations";
/// The version this build writes and reads.
pub const VERSION: i32 = 1;

/// The durable consumer that feeds the projection.
pub fn consumer_spec() -> DurableSpec {
    let mut spec = DurableSpec::new(
        USER_STREAM,
        &crate::projection::consumer_name(NAME, VERSION),
    );
    // Profile changes too: a friend's new nickname or face is an update in the friend logs
    // of everyone who lists them.
    spec.filter_subjects = vec![
        every_user(UserKind::Friend),
        every_user(UserKind::Black),
        every_user(UserKind::Account),
    ];
    spec
}

/// A friend request between two users.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestRow {
    /// The applicant.
    pub from_user_id: String,
    /// The addressee.
    pub to_user_id: String,
    /// The applicant's message.
    pub req_msg: String,
    /// Extension data.
    pub ex: String,
    /// When it was made, milliseconds.
    pub create_time: i64,
    /// 0 pending, 1 accepted, -1 refused.
    pub handle_result: i32,
    /// The answer's message.
    pub handle_msg: String,
    /// Who answered.
    pub handler_user_id: String,
    /// When, milliseconds.
    pub handle_time: i64,
    sequence: i64,
}

/// One side of a friendship.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FriendRow {
    /// Whose list it is on.
    pub owner_user_id: String,
    /// The friend.
    pub friend_user_id: String,
    /// The owner's remark.
    pub remark: String,
    /// Pinned by the owner.
    pub is_pinned: bool,
    /// Extension data.
    pub ex: String,
    /// 1 imported, 2 accepted request.
    pub add_source: i32,
    /// Who made it (the addressee who accepted, or the importing admin).
    pub operator_user_id: String,
    /// When, milliseconds.
    pub create_time: i64,
    deleted: bool,
    sequence: i64,
}

/// One block.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BlackRow {
    /// Who blocks.
    pub owner_user_id: String,
    /// Who is blocked.
    pub black_user_id: String,
    /// Extension data.
    pub ex: String,
    /// Who did it.
    pub operator_user_id: String,
    /// When, milliseconds.
    pub create_time: i64,
    deleted: bool,
    sequence: i64,
}

impl From<&Row> for RequestRow {
    fn from(row: &Row) -> Self {
        Self {
            from_user_id: row.get("from_user_id"),
            to_user_id: row.get("to_user_id"),
            req_msg: row.get("req_msg"),
            ex: row.get("ex"),
            create_time: row.get("create_time"),
            handle_result: row.get("handle_result"),
            handle_msg: row.get("handle_msg"),
            handler_user_id: row.get("handler_user_id"),
            handle_time: row.get("handle_time"),
            sequence: row.get("stream_sequence"),
        }
    }
}

impl From<&Row> for FriendRow {
    fn from(row: &Row) -> Self {
        Self {
            owner_user_id: row.get("owner_user_id"),
            friend_user_id: row.get("friend_user_id"),
            remark: row.get("remark"),
            is_pinned: row.get("is_pinned"),
            ex: row.get("ex"),
            add_source: row.get("add_source"),
            operator_user_id: row.get("operator_user_id"),
            create_time: row.get("create_time"),
            deleted: row.get("deleted"),
            sequence: row.get("stream_sequence"),
        }
    }
}

impl From<&Row> for BlackRow {
    fn from(row: &Row) -> Self {
        Self {
            owner_user_id: row.get("owner_user_id"),
            black_user_id: row.get("black_user_id"),
            ex: row.get("ex"),
            operator_user_id: row.get("operator_user_id"),
            create_time: row.get("create_time"),
            deleted: row.get("deleted"),
            sequence: row.get("stream_sequence"),
        }
    }
}

type Pair = (String, String);

/// The relation events of a batch, decoded, with their stream sequences.
enum Change {
    Requested(FriendRequested),
    Handled(FriendRequestHandled),
    Imported(FriendsImported),
    Deleted(FriendDeleted),
    Updated(FriendsUpdated),
    BlackAdded(BlackAdded),
    BlackRemoved(BlackRemoved),
    /// A user's nickname or face changed.
    Profile(String),
}

fn decode_batch(batch: &[RecordedEvent]) -> Result<Vec<(i64, Change)>, HandleError> {
    let mut changes = Vec::with_capacity(batch.len());
    for event in batch {
        let poison = |error: DecodeError| HandleError::Poison {
            stream_sequence: event.stream_sequence,
            reason: error.to_string(),
        };
        let sequence = i64::try_from(event.stream_sequence).unwrap_or(i64::MAX);
        let change = match event.kind.as_str() {
            kind if kind == FriendRequested::KIND => {
                Change::Requested(event.decode().map_err(poison)?)
            }
            kind if kind == FriendRequestHandled::KIND => {
                Change::Handled(event.decode().map_err(poison)?)
            }
            kind if kind == FriendsImported::KIND => {
                Change::Imported(event.decode().map_err(poison)?)
            }
            kind if kind == FriendDeleted::KIND => Change::Deleted(event.decode().map_err(poison)?),
            kind if kind == FriendsUpdated::KIND => {
                Change::Updated(event.decode().map_err(poison)?)
            }
            kind if kind == BlackAdded::KIND => Change::BlackAdded(event.decode().map_err(poison)?),
            kind if kind == BlackRemoved::KIND => {
                Change::BlackRemoved(event.decode().map_err(poison)?)
            }
            kind if kind == UserUpdated::KIND => {
                let updated: UserUpdated = event.decode().map_err(poison)?;
                if updated.nickname.is_none() && updated.face_url.is_none() {
                    continue;
                }
                Change::Profile(updated.user_id)
            }
            _ => continue,
        };
        changes.push((sequence, change));
    }
    Ok(changes)
}

/// The rows a batch touches, keyed by their primary keys.
#[derive(Default)]
struct Keys {
    requests: BTreeSet<Pair>,
    friends: BTreeSet<Pair>,
    blacks: BTreeSet<Pair>,
    /// Users whose profile changed: every row listing them as a friend.
    profiles: BTreeSet<String>,
}

impl Keys {
    fn of(changes: &[(i64, Change)]) -> Self {
        let mut keys = Self::default();
        let pair = |a: &str, b: &str| (a.to_owned(), b.to_owned());
        for (_, change) in changes {
            match change {
                Change::Requested(request) => {
                    keys.requests
                        .insert(pair(&request.from_user_id, &request.to_user_id));
                }
                Change::Handled(handled) => {
                    let (from, to) = (&handled.from_user_id, &handled.to_user_id);
                    keys.requests.insert(pair(from, to));
                    keys.requests.insert(pair(to, from));
                    keys.friends.insert(pair(from, to));
                    keys.friends.insert(pair(to, from));
                }
                Change::Imported(imported) => {
                    for friend in &imported.friend_user_ids {
                        keys.friends.insert(pair(&imported.owner_user_id, friend));
                        keys.friends.insert(pair(friend, &imported.owner_user_id));
                    }
                }
                Change::Deleted(deleted) => {
                    keys.friends
                        .insert(pair(&deleted.owner_user_id, &deleted.friend_user_id));
                }
                Change::Updated(updated) => {
                    for friend in &updated.friend_user_ids {
                        keys.friends.insert(pair(&updated.owner_user_id, friend));
                    }
                }
                Change::BlackAdded(added) => {
                    keys.blacks
                        .insert(pair(&added.owner_user_id, &added.black_user_id));
                }
                Change::BlackRemoved(removed) => {
                    keys.blacks
                        .insert(pair(&removed.owner_user_id, &removed.black_user_id));
                }
                Change::Profile(user_id) => {
                    keys.profiles.insert(user_id.clone());
                }
            }
        }
        keys
    }
}

fn split(pairs: &BTreeSet<Pair>) -> (Vec<&str>, Vec<&str>) {
    pairs.iter().map(|(a, b)| (a.as_str(), b.as_str())).unzip()
}

async fn load<T: for<'r> From<&'r Row>>(
    client: &impl GenericClient,
    table: &str,
    columns: (&str, &str),
    pairs: &BTreeSet<Pair>,
    key: impl Fn(&T) -> Pair,
) -> Result<BTreeMap<Pair, T>, tokio_postgres::Error> {
    if pairs.is_empty() {
        return Ok(BTreeMap::new());
    }
    let (first, second) = split(pairs);
    let rows = client
        .query(
            &format!(
                "SELECT t.* FROM {table} t
                 JOIN UNNEST($1::text[], $2::text[]) AS k(a, b)
                   ON t.{} = k.a AND t.{} = k.b",
                columns.0, columns.1
            ),
            &[&first, &second],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|row| {
            let value = T::from(row);
            (key(&value), value)
        })
        .collect())
}

/// The state the batch folds over, and what it changed.
#[derive(Default)]
struct Folded {
    requests: BTreeMap<Pair, RequestRow>,
    friends: BTreeMap<Pair, FriendRow>,
    blacks: BTreeMap<Pair, BlackRow>,
    dirty_requests: BTreeSet<Pair>,
    dirty_friends: BTreeSet<Pair>,
    dirty_blacks: BTreeSet<Pair>,
    friend_log: Vec<(String, String, ChangeState)>,
    black_log: Vec<(String, String, ChangeState)>,
}

impl Folded {
    fn fold(&mut self, sequence: i64, change: Change) {
        match change {
            Change::Requested(request) => {
                let key = (request.from_user_id.clone(), request.to_user_id.clone());
                let row = self.requests.entry(key.clone()).or_default();
                if row.sequence >= sequence {
                    return;
                }
                *row = RequestRow {
                    from_user_id: request.from_user_id,
                    to_user_id: request.to_user_id,
                    req_msg: request.req_msg,
                    ex: request.ex,
                    create_time: request.create_time,
                    sequence,
                    ..RequestRow::default()
                };
                self.dirty_requests.insert(key);
            }
            Change::Handled(handled) => self.handle(sequence, &handled),
            Change::Imported(imported) => {
                for friend in &imported.friend_user_ids {
                    for (owner, other) in [
                        (&imported.owner_user_id, friend),
                        (friend, &imported.owner_user_id),
                    ] {
                        self.befriend(
                            sequence,
                            owner,
                            other,
                            add_source::IMPORT,
                            &imported.operator_user_id,
                            imported.create_time,
                        );
                    }
                }
            }
            Change::Deleted(deleted) => {
                let key = (deleted.owner_user_id, deleted.friend_user_id);
                if let Some(row) = self.friends.get_mut(&key)
                    && !row.deleted
                    && row.sequence < sequence
                {
                    row.deleted = true;
                    row.sequence = sequence;
                    self.friend_log
                        .push((key.0.clone(), key.1.clone(), ChangeState::Delete));
                    self.dirty_friends.insert(key);
                }
            }
            Change::Updated(updated) => {
                let mut sort_changed = false;
                for friend in updated.friend_user_ids {
                    let key = (updated.owner_user_id.clone(), friend);
                    let Some(row) = self.friends.get_mut(&key) else {
                        continue;
                    };
                    if row.deleted || row.sequence >= sequence {
                        continue;
                    }
                    if let Some(remark) = &updated.remark {
                        row.remark.clone_from(remark);
                    }
                    if let Some(ex) = &updated.ex {
                        row.ex.clone_from(ex);
                    }
                    if let Some(pinned) = updated.is_pinned {
                        sort_changed |= row.is_pinned != pinned;
                        row.is_pinned = pinned;
                    }
                    row.sequence = sequence;
                    self.friend_log
                        .push((key.0.clone(), key.1.clone(), ChangeState::Update));
                    self.dirty_friends.insert(key);
                }
                if sort_changed {
                    self.friend_log.push((
                        updated.owner_user_id,
                        SORT_MARKER.to_owned(),
                        ChangeState::Update,
                    ));
                }
            }
            Change::BlackAdded(added) => {
                let key = (added.owner_user_id.clone(), added.black_user_id.clone());
                let row = self.blacks.entry(key.clone()).or_default();
                if row.sequence >= sequence {
                    return;
                }
                let state = if row.sequence == 0 || row.deleted {
                    ChangeState::Insert
                } else {
                    ChangeState::Update
                };
                *row = BlackRow {
                    owner_user_id: added.owner_user_id,
                    black_user_id: added.black_user_id,
                    ex: added.ex,
                    operator_user_id: added.operator_user_id,
                    create_time: added.create_time,
                    deleted: false,
                    sequence,
                };
                self.black_log.push((key.0.clone(), key.1.clone(), state));
                self.dirty_blacks.insert(key);
            }
            Change::Profile(user_id) => {
                // The rows are unchanged but read differently (they show the friend's
                // profile): touched, so a replay of the change finds them newer and skips.
                for (key, row) in &mut self.friends {
                    if key.1 == user_id
                        && row.sequence > 0
                        && !row.deleted
                        && row.sequence < sequence
                    {
                        row.sequence = sequence;
                        self.friend_log
                            .push((key.0.clone(), key.1.clone(), ChangeState::Update));
                        self.dirty_friends.insert(key.clone());
                    }
                }
            }
            Change::BlackRemoved(removed) => {
                let key = (removed.owner_user_id, removed.black_user_id);
                if let Some(row) = self.blacks.get_mut(&key)
                    && !row.deleted
                    && row.sequence < sequence
                {
                    row.deleted = true;
                    row.sequence = sequence;
                    self.black_log
                        .push((key.0.clone(), key.1.clone(), ChangeState::Delete));
                    self.dirty_blacks.insert(key);
                }
            }
        }
    }

    fn handle(&mut self, sequence: i64, handled: &FriendRequestHandled) {
        let (from, to) = (&handled.from_user_id, &handled.to_user_id);
        let answer = |row: &mut RequestRow| {
            row.handle_result = handled.handle_result;
            row.handle_msg.clone_from(&handled.handle_msg);
            row.handler_user_id.clone_from(to);
            row.handle_time = handled.handle_time;
            row.sequence = sequence;
        };
        let key = (from.clone(), to.clone());
        if let Some(row) = self.requests.get_mut(&key)
            && row.sequence < sequence
        {
            answer(row);
            self.dirty_requests.insert(key);
        }
        if !handled.accepted() {
            return;
        }
        let reverse = (to.clone(), from.clone());
        if let Some(row) = self.requests.get_mut(&reverse)
            && row.sequence < sequence
            && row.handle_result == 0
        {
            answer(row);
            self.dirty_requests.insert(reverse);
        }
        for (owner, other) in [(from, to), (to, from)] {
            self.befriend(
                sequence,
                owner,
                other,
                add_source::REQUEST,
                to,
                handled.handle_time,
            );
        }
    }

    /// Makes `owner` → `friend`, unless it exists.
    fn befriend(
        &mut self,
        sequence: i64,
        owner: &str,
        friend: &str,
        source: i32,
        operator: &str,
        create_time: i64,
    ) {
        let key = (owner.to_owned(), friend.to_owned());
        let row = self.friends.entry(key.clone()).or_default();
        if row.sequence >= sequence || (row.sequence > 0 && !row.deleted) {
            return;
        }
        *row = FriendRow {
            owner_user_id: key.0.clone(),
            friend_user_id: key.1.clone(),
            add_source: source,
            operator_user_id: operator.to_owned(),
            create_time,
            sequence,
            ..FriendRow::default()
        };
        self.friend_log
            .push((key.0.clone(), key.1.clone(), ChangeState::Insert));
        self.dirty_friends.insert(key);
    }

    async fn store(&self, client: &impl GenericClient) -> Result<(), tokio_postgres::Error> {
        if !self.dirty_requests.is_empty() {
            let rows: Vec<&RequestRow> = self
                .dirty_requests
                .iter()
                .filter_map(|key| self.requests.get(key))
                .collect();
            client
                .execute(
                    "INSERT INTO friend_requests_v1 AS t
                         (from_user_id, to_user_id, req_msg, ex, create_time, handle_result,
                          handle_msg, handler_user_id, handle_time, stream_sequence)
                     SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[],
                                          $5::bigint[], $6::int[], $7::text[], $8::text[],
                                          $9::bigint[], $10::bigint[])
                     ON CONFLICT (from_user_id, to_user_id) DO UPDATE SET
                         req_msg = EXCLUDED.req_msg, ex = EXCLUDED.ex,
                         create_time = EXCLUDED.create_time,
                         handle_result = EXCLUDED.handle_result,
                         handle_msg = EXCLUDED.handle_msg,
                         handler_user_id = EXCLUDED.handler_user_id,
                         handle_time = EXCLUDED.handle_time,
                         stream_sequence = EXCLUDED.stream_sequence
                     WHERE t.stream_sequence < EXCLUDED.stream_sequence",
                    &[
                        &column(&rows, |row| row.from_user_id.as_str()),
                        &column(&rows, |row| row.to_user_id.as_str()),
                        &column(&rows, |row| row.req_msg.as_str()),
                        &column(&rows, |row| row.ex.as_str()),
                        &column(&rows, |row| row.create_time),
                        &column(&rows, |row| row.handle_result),
                        &column(&rows, |row| row.handle_msg.as_str()),
                        &column(&rows, |row| row.handler_user_id.as_str()),
                        &column(&rows, |row| row.handle_time),
                        &column(&rows, |row| row.sequence),
                    ],
                )
                .await?;
        }
        if !self.dirty_friends.is_empty() {
            let rows: Vec<&FriendRow> = self
                .dirty_friends
                .iter()
                .filter_map(|key| self.friends.get(key))
                .collect();
            client
                .execute(
                    "INSERT INTO friends_v1 AS t
                         (owner_user_id, friend_user_id, remark, is_pinned, ex, add_source,
                          operator_user_id, create_time, deleted, stream_sequence)
                     SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::bool[],
                                          $5::text[], $6::int[], $7::text[], $8::bigint[],
                                          $9::bool[], $10::bigint[])
                     ON CONFLICT (owner_user_id, friend_user_id) DO UPDATE SET
                         remark = EXCLUDED.remark, is_pinned = EXCLUDED.is_pinned,
                         ex = EXCLUDED.ex, add_source = EXCLUDED.add_source,
                         operator_user_id = EXCLUDED.operator_user_id,
                         create_time = EXCLUDED.create_time, deleted = EXCLUDED.deleted,
                         stream_sequence = EXCLUDED.stream_sequence
                     WHERE t.stream_sequence < EXCLUDED.stream_sequence",
                    &[
                        &column(&rows, |row| row.owner_user_id.as_str()),
                        &column(&rows, |row| row.friend_user_id.as_str()),
                        &column(&rows, |row| row.remark.as_str()),
                        &column(&rows, |row| row.is_pinned),
                        &column(&rows, |row| row.ex.as_str()),
                        &column(&rows, |row| row.add_source),
                        &column(&rows, |row| row.operator_user_id.as_str()),
                        &column(&rows, |row| row.create_time),
                        &column(&rows, |row| row.deleted),
                        &column(&rows, |row| row.sequence),
                    ],
                )
                .await?;
        }
        if !self.dirty_blacks.is_empty() {
            let rows: Vec<&BlackRow> = self
                .dirty_blacks
                .iter()
                .filter_map(|key| self.blacks.get(key))
                .collect();
            client
                .execute(
                    "INSERT INTO blacks_v1 AS t
                         (owner_user_id, black_user_id, ex, operator_user_id, create_time,
                          deleted, stream_sequence)
                     SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[],
                                          $5::bigint[], $6::bool[], $7::bigint[])
                     ON CONFLICT (owner_user_id, black_user_id) DO UPDATE SET
                         ex = EXCLUDED.ex, operator_user_id = EXCLUDED.operator_user_id,
                         create_time = EXCLUDED.create_time, deleted = EXCLUDED.deleted,
                         stream_sequence = EXCLUDED.stream_sequence
                     WHERE t.stream_sequence < EXCLUDED.stream_sequence",
                    &[
                        &column(&rows, |row| row.owner_user_id.as_str()),
                        &column(&rows, |row| row.black_user_id.as_str()),
                        &column(&rows, |row| row.ex.as_str()),
                        &column(&rows, |row| row.operator_user_id.as_str()),
                        &column(&rows, |row| row.create_time),
                        &column(&rows, |row| row.deleted),
                        &column(&rows, |row| row.sequence),
                    ],
                )
                .await?;
        }
        record_changes(client, Log::Friends, &self.friend_log).await?;
        record_changes(client, Log::Blacks, &self.black_log).await
    }
}

fn column<'a, R, T>(rows: &[&'a R], field: impl Fn(&'a R) -> T) -> Vec<T> {
    rows.iter().map(|row| field(row)).collect()
}

/// Applies friend and black events.
pub struct RelationsProjection {
    pool: Pool,
}

impl RelationsProjection {
    /// A projection writing through `pool`.
    pub fn new(pool: Pool) -> Self {
        Self { pool }
    }
}

impl BatchHandler for RelationsProjection {
    async fn apply(&mut self, batch: &[RecordedEvent]) -> Result<(), HandleError> {
        let changes = decode_batch(batch)?;
        let last_sequence = batch
            .iter()
            .map(|event| event.stream_sequence)
            .max()
            .unwrap_or(0);
        let mut client = self.pool.get().await.map_err(HandleError::transient)?;
        let transaction = client.transaction().await.map_err(HandleError::transient)?;
        let keys = Keys::of(&changes);
        let mut folded = Folded {
            requests: load(
                &transaction,
                "friend_requests_v1",
                ("from_user_id", "to_user_id"),
                &keys.requests,
                |row: &RequestRow| (row.from_user_id.clone(), row.to_user_id.clone()),
            )
            .await
            .map_err(HandleError::transient)?,
            friends: load(
                &transaction,
                "friends_v1",
                ("owner_user_id", "friend_user_id"),
                &keys.friends,
                |row: &FriendRow| (row.owner_user_id.clone(), row.friend_user_id.clone()),
            )
            .await
            .map_err(HandleError::transient)?,
            blacks: load(
                &transaction,
                "blacks_v1",
                ("owner_user_id", "black_user_id"),
                &keys.blacks,
                |row: &BlackRow| (row.owner_user_id.clone(), row.black_user_id.clone()),
            )
            .await
            .map_err(HandleError::transient)?,
            ..Folded::default()
        };
        if !keys.profiles.is_empty() {
            let profiles: Vec<&str> = keys.profiles.iter().map(String::as_str).collect();
            let listing = transaction
                .query(
                    "SELECT * FROM friends_v1 WHERE friend_user_id = ANY($1)",
                    &[&profiles],
                )
                .await
                .map_err(HandleError::transient)?;
            for row in &listing {
                let friend = FriendRow::from(row);
                let key = (friend.owner_user_id.clone(), friend.friend_user_id.clone());
                folded.friends.entry(key).or_insert(friend);
            }
        }
        for (sequence, change) in changes {
            folded.fold(sequence, change);
        }
        folded
            .store(&transaction)
            .await
            .map_err(HandleError::transient)?;
        projection::advance(&transaction, NAME, VERSION, last_sequence)
            .await
            .map_err(HandleError::transient)?;
        transaction.commit().await.map_err(HandleError::transient)
    }
}

// ---- Queries ----

/// A friend with the friend's profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FriendWithUser {
    /// The friendship, on the owner's side.
    pub friend: FriendRow,
    /// The friend's profile; `None` only if the user vanished from the users table.
    pub user: Option<crate::users::UserRow>,
}

const FRIEND_WITH_USER: &str = "SELECT f.*, u.user_id AS u_user_id, u.nickname, u.face_url,
        u.ex AS u_ex, u.app_manger_level, u.global_recv_msg_opt, u.create_time AS u_create_time
     FROM friends_v1 f LEFT JOIN users_v1 u ON u.user_id = f.friend_user_id";

fn friend_with_user(row: &Row) -> FriendWithUser {
    let user = row
        .get::<_, Option<String>>("u_user_id")
        .map(|user_id| crate::users::UserRow {
            user_id,
            nickname: row.get("nickname"),
            face_url: row.get("face_url"),
            ex: row.get("u_ex"),
            app_manger_level: row.get("app_manger_level"),
            global_recv_msg_opt: row.get("global_recv_msg_opt"),
            create_time: row.get("u_create_time"),
        });
    FriendWithUser {
        friend: FriendRow::from(row),
        user,
    }
}

/// A page of the owner's friends (pinned first, then oldest first), and how many there are.
pub async fn friends_page(
    pool: &Pool,
    owner: &str,
    offset: i64,
    limit: i64,
) -> Result<(i64, Vec<FriendWithUser>), ReadModelError> {
    let client = pool.get().await?;
    let total: i64 = client
        .query_one(
            "SELECT count(*) FROM friends_v1 WHERE owner_user_id = $1 AND NOT deleted",
            &[&owner],
        )
        .await?
        .get(0);
    let rows = client
        .query(
            &format!(
                "{FRIEND_WITH_USER} WHERE f.owner_user_id = $1 AND NOT f.deleted
                 ORDER BY f.is_pinned DESC, f.create_time, f.friend_user_id OFFSET $2 LIMIT $3"
            ),
            &[&owner, &offset, &limit],
        )
        .await?;
    Ok((total, rows.iter().map(friend_with_user).collect()))
}

/// The owner's friends among `friend_ids`, in the order asked.
pub async fn friends_among(
    pool: &Pool,
    owner: &str,
    friend_ids: &[String],
) -> Result<Vec<FriendWithUser>, ReadModelError> {
    if friend_ids.is_empty() {
        return Ok(Vec::new());
    }
    let client = pool.get().await?;
    let rows = client
        .query(
            &format!(
                "{FRIEND_WITH_USER}
                 JOIN UNNEST($2::text[]) WITH ORDINALITY AS k(id, n) ON k.id = f.friend_user_id
                 WHERE f.owner_user_id = $1 AND NOT f.deleted ORDER BY k.n"
            ),
            &[&owner, &friend_ids],
        )
        .await?;
    Ok(rows.iter().map(friend_with_user).collect())
}

/// Every friend ID of the owner, in the order `get_full_friend_user_ids` hashes them.
pub async fn friend_ids(pool: &Pool, owner: &str) -> Result<Vec<String>, ReadModelError> {
    let client = pool.get().await?;
    let rows = client
        .query(
            "SELECT friend_user_id FROM friends_v1 WHERE owner_user_id = $1 AND NOT deleted
             ORDER BY friend_user_id",
            &[&owner],
        )
        .await?;
    Ok(rows.iter().map(|row| row.get(0)).collect())
}

/// Everyone who lists `user_id` as a friend.
pub async fn listed_by(pool: &Pool, user_id: &str) -> Result<Vec<String>, ReadModelError> {
    let client = pool.get().await?;
    let rows = client
        .query(
            "SELECT owner_user_id FROM friends_v1 WHERE friend_user_id = $1 AND NOT deleted
             ORDER BY owner_user_id",
            &[&user_id],
        )
        .await?;
    Ok(rows.iter().map(|row| row.get(0)).collect())
}

/// Whether `owner` lists `other` as a friend.
pub async fn is_friend(pool: &Pool, owner: &str, other: &str) -> Result<bool, ReadModelError> {
    let client = pool.get().await?;
    Ok(client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM friends_v1
                            WHERE owner_user_id = $1 AND friend_user_id = $2 AND NOT deleted)",
            &[&owner, &other],
        )
        .await?
        .get(0))
}

/// What a single-chat send needs to know about sender and receiver: whether the receiver
/// blocks the sender, and whether the receiver lists the sender as a friend.
pub async fn send_relation(
    pool: &Pool,
    sender: &str,
    receiver: &str,
) -> Result<(bool, bool), ReadModelError> {
    let client = pool.get().await?;
    let row = client
        .query_one(
            "SELECT
                 EXISTS (SELECT 1 FROM blacks_v1
                         WHERE owner_user_id = $2 AND black_user_id = $1 AND NOT deleted),
                 EXISTS (SELECT 1 FROM friends_v1
                         WHERE owner_user_id = $2 AND friend_user_id = $1 AND NOT deleted)",
            &[&sender, &receiver],
        )
        .await?;
    Ok((row.get(0), row.get(1)))
}

/// A friend request with both users' public profiles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestWithUsers {
    /// The request.
    pub request: RequestRow,
    /// The applicant's (nickname, faceURL).
    pub from: (String, String),
    /// The addressee's (nickname, faceURL).
    pub to: (String, String),
}

const REQUEST_WITH_USERS: &str = "SELECT r.*,
        coalesce(a.nickname, '') AS from_nickname, coalesce(a.face_url, '') AS from_face_url,
        coalesce(b.nickname, '') AS to_nickname, coalesce(b.face_url, '') AS to_face_url
     FROM friend_requests_v1 r
     LEFT JOIN users_v1 a ON a.user_id = r.from_user_id
     LEFT JOIN users_v1 b ON b.user_id = r.to_user_id";

fn request_with_users(row: &Row) -> RequestWithUsers {
    RequestWithUsers {
        request: RequestRow::from(row),
        from: (row.get("from_nickname"), row.get("from_face_url")),
        to: (row.get("to_nickname"), row.get("to_face_url")),
    }
}

/// Which side of requests a listing is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Requests addressed to the user.
    Received,
    /// Requests the user made.
    Sent,
}

/// A page of the user's requests (newest first), optionally only those with one of
/// `handle_results`, and how many match.
pub async fn requests_page(
    pool: &Pool,
    user_id: &str,
    direction: Direction,
    handle_results: &[i32],
    offset: i64,
    limit: i64,
) -> Result<(i64, Vec<RequestWithUsers>), ReadModelError> {
    let client = pool.get().await?;
    let column = match direction {
        Direction::Received => "to_user_id",
        Direction::Sent => "from_user_id",
    };
    let condition =
        format!("r.{column} = $1 AND (cardinality($2::int[]) = 0 OR r.handle_result = ANY($2))");
    let total: i64 = client
        .query_one(
            &format!("SELECT count(*) FROM friend_requests_v1 r WHERE {condition}"),
            &[&user_id, &handle_results],
        )
        .await?
        .get(0);
    let rows = client
        .query(
            &format!(
                "{REQUEST_WITH_USERS} WHERE {condition}
                 ORDER BY r.create_time DESC, r.from_user_id, r.to_user_id OFFSET $3 LIMIT $4"
            ),
            &[&user_id, &handle_results, &offset, &limit],
        )
        .await?;
    Ok((total, rows.iter().map(request_with_users).collect()))
}

/// The requests between two users, either way.
pub async fn requests_between(
    pool: &Pool,
    a: &str,
    b: &str,
) -> Result<Vec<RequestWithUsers>, ReadModelError> {
    let client = pool.get().await?;
    let rows = client
        .query(
            &format!(
                "{REQUEST_WITH_USERS}
                 WHERE (r.from_user_id = $1 AND r.to_user_id = $2)
                    OR (r.from_user_id = $2 AND r.to_user_id = $1)
                 ORDER BY r.create_time DESC, r.from_user_id"
            ),
            &[&a, &b],
        )
        .await?;
    Ok(rows.iter().map(request_with_users).collect())
}

/// How many pending requests to the user were made after `since` (milliseconds).
pub async fn unhandled_requests(
    pool: &Pool,
    user_id: &str,
    since: i64,
) -> Result<i64, ReadModelError> {
    let client = pool.get().await?;
    Ok(client
        .query_one(
            "SELECT count(*) FROM friend_requests_v1
             WHERE to_user_id = $1 AND handle_result = 0 AND create_time > $2",
            &[&user_id, &since],
        )
        .await?
        .get(0))
}

/// A block with the blocked user's public profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlackWithUser {
    /// The block.
    pub black: BlackRow,
    /// The blocked user's (nickname, faceURL, ex).
    pub user: (String, String, String),
}

const BLACK_WITH_USER: &str = "SELECT b.*, coalesce(u.nickname, '') AS nickname,
        coalesce(u.face_url, '') AS face_url, coalesce(u.ex, '') AS u_ex
     FROM blacks_v1 b LEFT JOIN users_v1 u ON u.user_id = b.black_user_id";

fn black_with_user(row: &Row) -> BlackWithUser {
    BlackWithUser {
        black: BlackRow::from(row),
        user: (row.get("nickname"), row.get("face_url"), row.get("u_ex")),
    }
}

/// A page of the owner's blocks (oldest first), and how many there are.
pub async fn blacks_page(
    pool: &Pool,
    owner: &str,
    offset: i64,
    limit: i64,
) -> Result<(i64, Vec<BlackWithUser>), ReadModelError> {
    let client = pool.get().await?;
    let total: i64 = client
        .query_one(
            "SELECT count(*) FROM blacks_v1 WHERE owner_user_id = $1 AND NOT deleted",
            &[&owner],
        )
        .await?
        .get(0);
    let rows = client
        .query(
            &format!(
                "{BLACK_WITH_USER} WHERE b.owner_user_id = $1 AND NOT b.deleted
                 ORDER BY b.create_time, b.black_user_id OFFSET $2 LIMIT $3"
            ),
            &[&owner, &offset, &limit],
        )
        .await?;
    Ok((total, rows.iter().map(black_with_user).collect()))
}

/// The owner's blocks among `user_ids`, in the order asked.
pub async fn blacks_among(
    pool: &Pool,
    owner: &str,
    user_ids: &[String],
) -> Result<Vec<BlackWithUser>, ReadModelError> {
    if user_ids.is_empty() {
        return Ok(Vec::new());
    }
    let client = pool.get().await?;
    let rows = client
        .query(
            &format!(
                "{BLACK_WITH_USER}
                 JOIN UNNEST($2::text[]) WITH ORDINALITY AS k(id, n) ON k.id = b.black_user_id
                 WHERE b.owner_user_id = $1 AND NOT b.deleted ORDER BY k.n"
            ),
            &[&owner, &user_ids],
        )
        .await?;
    Ok(rows.iter().map(black_with_user).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn requested(from: &str, to: &str) -> Change {
        Change::Requested(FriendRequested {
            from_user_id: from.into(),
            to_user_id: to.into(),
            req_msg: "hi".into(),
            ex: String::new(),
            create_time: 1,
        })
    }

    fn handled(from: &str, to: &str, result: i32) -> Change {
        Change::Handled(FriendRequestHandled {
            from_user_id: from.into(),
            to_user_id: to.into(),
            handle_result: result,
            handle_msg: "ok".into(),
            handle_time: 2,
        })
    }

    fn pair(a: &str, b: &str) -> Pair {
        (a.into(), b.into())
    }

    #[test]
    fn accepting_answers_both_requests_and_befriends_both_ways() {
        let mut folded = Folded::default();
        folded.fold(1, requested("a", "b"));
        folded.fold(2, requested("b", "a"));
        folded.fold(3, handled("a", "b", 1));
        assert_eq!(folded.requests[&pair("a", "b")].handle_result, 1);
        assert_eq!(folded.requests[&pair("b", "a")].handle_result, 1);
        assert_eq!(folded.requests[&pair("b", "a")].handler_user_id, "b");
        for key in [pair("a", "b"), pair("b", "a")] {
            let row = &folded.friends[&key];
            assert!(!row.deleted);
            assert_eq!(row.add_source, add_source::REQUEST);
            assert_eq!(row.operator_user_id, "b");
        }
        assert_eq!(folded.friend_log.len(), 2);
    }

    #[test]
    fn a_refusal_makes_no_friends_and_replays_change_nothing() {
        let mut folded = Folded::default();
        folded.fold(1, requested("a", "b"));
        folded.fold(2, handled("a", "b", -1));
        assert!(folded.friends.values().all(|row| row.sequence == 0));
        assert!(folded.friend_log.is_empty());
        let before = folded.requests.clone();
        folded.fold(1, requested("a", "b"));
        folded.fold(2, handled("a", "b", -1));
        assert_eq!(folded.requests, before);
    }

    #[test]
    fn deletes_are_one_sided_and_pins_move_the_sort_marker() {
        let mut folded = Folded::default();
        folded.fold(
            1,
            Change::Imported(FriendsImported {
                owner_user_id: "a".into(),
                friend_user_ids: vec!["b".into(), "c".into()],
                operator_user_id: "imAdmin".into(),
                create_time: 5,
            }),
        );
        folded.fold(
            2,
            Change::Deleted(FriendDeleted {
                owner_user_id: "a".into(),
                friend_user_id: "b".into(),
            }),
        );
        assert!(folded.friends[&pair("a", "b")].deleted);
        assert!(!folded.friends[&pair("b", "a")].deleted);
        folded.friend_log.clear();
        folded.fold(
            3,
            Change::Updated(FriendsUpdated {
                owner_user_id: "a".into(),
                friend_user_ids: vec!["b".into(), "c".into()],
                is_pinned: Some(true),
                ..FriendsUpdated::default()
            }),
        );
        assert!(
            !folded.friends[&pair("a", "b")].is_pinned,
            "not a friend any more"
        );
        assert!(folded.friends[&pair("a", "c")].is_pinned);
        assert_eq!(
            folded.friend_log,
            vec![
                ("a".into(), "c".into(), ChangeState::Update),
                ("a".into(), SORT_MARKER.into(), ChangeState::Update),
            ]
        );
    }

    #[test]
    fn blocking_twice_is_an_update_and_unblocking_a_delete() {
        let mut folded = Folded::default();
        let add = |ex: &str| {
            Change::BlackAdded(BlackAdded {
                owner_user_id: "a".into(),
                black_user_id: "b".into(),
                operator_user_id: "a".into(),
                ex: ex.into(),
                create_time: 1,
            })
        };
        folded.fold(1, add("x"));
        folded.fold(2, add("y"));
        folded.fold(
            3,
            Change::BlackRemoved(BlackRemoved {
                owner_user_id: "a".into(),
                black_user_id: "b".into(),
            }),
        );
        let states: Vec<ChangeState> = folded.black_log.iter().map(|c| c.2).collect();
        assert_eq!(
            states,
            vec![
                ChangeState::Insert,
                ChangeState::Update,
                ChangeState::Delete
            ]
        );
        assert!(folded.blacks[&pair("a", "b")].deleted);
    }
}
