//! Rebuilding a read model from the log while the live one keeps serving.
//!
//! A read model is the set of tables some projections write together (several projections
//! share `user_conversations_v1`, so they are rebuilt as one). A rebuild:
//!
//! 1. creates a shadow schema `jetim_rebuild_<model>` holding an empty copy of each table as
//!    the migrations left it (columns, defaults, checks, keys and indexes, with their names),
//!    and an empty `projections` registry of its own, which the projections' position updates
//!    reach instead of the live one;
//! 2. replays each projection's subjects from stream sequence 1 with an ordered consumer (no
//!    server state) through the projection's own apply code, on connections whose
//!    `search_path` puts the shadow schema first, so the same statements fill the copies;
//! 3. repeats the replay from where it stopped until one pass finds less than a batch to do;
//!    builds the indexes that applying never reads and that cost more row by row
//!    ([`BUILT_AFTER_FILL`]), and catches up again the same way;
//! 4. switches, in one transaction: locks the live tables (the live projector and readers
//!    wait), reads how far the live projections have got, applies to the copies whatever they
//!    lack up to there, drops the live tables (or keeps them in `jetim_retired_<model>`) and
//!    moves the copies into their place. The live durable consumers then carry on from their
//!    own position into the new tables; an event the copies already hold changes nothing,
//!    because applying is idempotent.
//!
//! Readers never see a half-built table: until the commit they read the old ones, after it
//! the new ones. A rebuild of one read model at a time is enforced with an advisory lock.

use std::time::{Duration, Instant};

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use jetim_streams::RecordedEvent;
use jetim_streams::consume::{BatchHandler as _, ConsumeError, DurableSpec, HandleError, Replay};
use tokio_postgres::NoTls;

use crate::{AnyProjection, conversations, groups, messages, relations, settings, users};

/// Tables some projections write together, rebuilt as one.
#[derive(Debug)]
pub struct ReadModel {
    /// The read model's name (`conversations`).
    pub name: &'static str,
    /// The projections that write its tables.
    pub projections: &'static [&'static str],
    /// Its tables.
    pub tables: &'static [&'static str],
}

/// Every read model, each with every table its projections write.
pub const READ_MODELS: &[ReadModel] = &[
    ReadModel {
        name: "users",
        projections: &[users::NAME],
        tables: &["users_v1"],
    },
    ReadModel {
        name: "user_settings",
        projections: &[settings::NAME],
        tables: &["user_commands_v1", "client_configs_v1"],
    },
    ReadModel {
        name: "relations",
        projections: &[relations::NAME],
        tables: &[
            "friend_requests_v1",
            "friends_v1",
            "blacks_v1",
            "friend_versions_v1",
            "friend_changes_v1",
            "black_versions_v1",
            "black_changes_v1",
        ],
    },
    ReadModel {
        name: "conversations",
        projections: &[
            messages::NAME,
            conversations::NAME,
            groups::NAME,
            groups::PROFILES_NAME,
        ],
        tables: &[
            "messages_v1",
            "conversation_seqs_v1",
            "user_conversations_v1",
            "read_seqs_v1",
            "hidden_messages_v1",
            "conversation_versions_v1",
            "conversation_changes_v1",
            "groups_v1",
            "group_members_v1",
            "group_requests_v1",
            "joined_group_versions_v1",
            "joined_group_changes_v1",
            "group_member_versions_v1",
            "group_member_changes_v1",
            "group_profile_positions_v1",
        ],
    },
];

/// The read model a projection (or a read model's own name) belongs to.
pub fn read_model_of(name: &str) -> Option<&'static ReadModel> {
    READ_MODELS
        .iter()
        .find(|model| model.name == name || model.projections.contains(&name))
}

/// How a rebuild runs.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Events per batch. A batch is one transaction, except the messages projection's, which
    /// splits it by conversation into one transaction per connection it applies on.
    pub batch_size: usize,
    /// Keep the replaced tables in `jetim_retired_<model>` instead of dropping them.
    pub keep_old: bool,
}

impl Options {
    /// Batches of 10,000: each conversation's rows (its max seq, its members' rows and read
    /// positions) are written once per batch, so bigger batches write them less often.
    /// `jetim bench rebuild` (200,000 events in 1,000 conversations) made 23,500 events/s
    /// with 1,000, about 35,000 with 5,000 and no more with 10,000 while the lanes waited for
    /// each other; since they do not, 68,209–69,453 with 5,000, 76,294–76,754 with 10,000
    /// and 76,786–81,458 with 20,000. A batch of 10,000 messages holds about 10 MB.
    pub const DEFAULT: Self = Self {
        batch_size: 10_000,
        keep_old: false,
    };
}

impl Default for Options {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Where a rebuild is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Replaying the log into the copies while the live tables serve.
    Filling,
    /// Holding the live tables locked and applying the last events before the switch.
    Switching,
}

/// A progress report, after each batch handed to the projection's lanes; its position and
/// count are of the batches applied by then (up to [`BATCHES_IN_FLIGHT`] fewer).
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    /// The projection being replayed.
    pub projection: &'static str,
    /// What the rebuild is doing.
    pub phase: Phase,
    /// The stream sequence of the last event applied.
    pub stream_sequence: u64,
    /// The stream's last sequence when this replay began.
    pub target: u64,
    /// Events applied to this projection's copy so far.
    pub events: u64,
    /// Time since the rebuild began reading this projection's stream.
    pub elapsed: Duration,
}

/// What a finished rebuild did.
#[derive(Debug, Clone)]
pub struct Rebuilt {
    /// Per projection: events applied, and the stream sequence the new tables hold.
    pub projections: Vec<(&'static str, u64, u64)>,
    /// Events no projection could apply (terminated in the live consumer too), skipped.
    pub poison: u64,
    /// How long the live tables were locked for the switch.
    pub switch_time: Duration,
    /// How long the parts before the switch took.
    pub timings: Timings,
    /// From start to switch.
    pub elapsed: Duration,
}

/// Where a rebuild's time went before the switch ([`Rebuilt::switch_time`]): with it, nearly
/// all of [`Rebuilt::elapsed`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Timings {
    /// Taking the lock and making the empty copies.
    pub setup: Duration,
    /// Replaying the log into the copies until a pass found less than a batch to do.
    pub fill: Duration,
    /// Events the copies got in [`Timings::fill`], all projections together.
    pub filled: u64,
    /// Building the copies' deferred indexes.
    pub indexes: Duration,
    /// Replaying what the log got during the indexes, before the switch.
    pub catch_up: Duration,
    /// What the replay waited for during [`Timings::fill`]: the larger part says what paced
    /// it, reading the log or applying to the copies.
    pub fill_waits: Waits,
}

/// What a replay waited for, besides its own work of handing events to the lanes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Waits {
    /// Waiting for events from the log (NATS), read ahead by a task of their own.
    pub log: Duration,
    /// Waiting for the lanes, which had as many batches as they may hold to apply (with the
    /// moment each batch takes to be split among them).
    pub lanes: Duration,
}

/// Why a rebuild stopped. Nothing of the live read model has changed unless the switch
/// committed, and a rebuild can simply be run again.
#[derive(Debug, thiserror::Error)]
pub enum RebuildError {
    /// No such projection or read model.
    #[error(
        "no read model or projection is called {0:?}; there are: users, user_settings, relations, conversations (messages, conversation_settings, groups, group_profiles)"
    )]
    Unknown(String),
    /// Another rebuild of the same read model holds the lock.
    #[error("a rebuild of {0} is already running")]
    Busy(&'static str),
    /// Postgres refused or failed.
    #[error("database: {}", crate::describe(.0))]
    Db(#[from] tokio_postgres::Error),
    /// No connection could be had.
    #[error("no database connection: {0}")]
    Pool(String),
    /// Reading the log failed.
    #[error("reading the log: {0}")]
    Log(String),
    /// A batch kept failing to apply.
    #[error("applying to the copy of {projection} failed: {error}")]
    Apply {
        /// The projection.
        projection: &'static str,
        /// What went wrong.
        error: String,
    },
    /// The live tables stayed busy through every attempt to switch.
    #[error("could not lock the live tables of {0} for the switch; is something holding them?")]
    SwitchLocked(&'static str),
}

impl From<ConsumeError> for RebuildError {
    fn from(error: ConsumeError) -> Self {
        Self::Log(error.to_string())
    }
}

/// How often a batch that failed for a transient reason is tried before the rebuild stops.
const APPLY_ATTEMPTS: u32 = 5;
/// How many deadlocks a batch may be chosen to break before they count as failures.
const DEADLOCK_RETRIES: u32 = 100;
/// How often the switch is tried when the live tables cannot be locked in time.
const SWITCH_ATTEMPTS: u32 = 100;
/// How long the switch waits for a lock before it lets go of all and tries again. Readers
/// take a statement's tables in their own order, so waiting while holding some could close
/// a deadlock; this is well below Postgres's `deadlock_timeout` (1 s by default), so the
/// switch gives way first and no reader is ever the deadlock's victim.
const SWITCH_LOCK_TIMEOUT: &str = "200ms";
/// The pause before the switch tries again.
const SWITCH_RETRY_DELAY: Duration = Duration::from_millis(50);

/// Rebuilds `model` from the log into fresh tables and switches reads to them.
///
/// `connection` reaches the read models' database: the rebuild opens its own connections,
/// two that write the copies and one that holds the lock and switches.
pub async fn rebuild(
    jetstream: &async_nats::jetstream::Context,
    connection: &tokio_postgres::Config,
    model: &'static ReadModel,
    options: Options,
    mut progress: impl FnMut(&Progress) + Send,
) -> Result<Rebuilt, RebuildError> {
    let started = Instant::now();
    let (mut control, driver) = connection.connect(NoTls).await?;
    let driver = tokio::spawn(driver);
    let outcome = async {
        let locked: bool = control
            .query_one(
                "SELECT pg_try_advisory_lock(hashtext('jetim rebuild ' || $1))",
                &[&model.name],
            )
            .await?
            .get(0);
        if !locked {
            return Err(RebuildError::Busy(model.name));
        }
        let shadow = format!("jetim_rebuild_{}", model.name);
        let projections = projections_of(model);
        let deferred_indexes = create_copies(&control, model, &shadow).await?;
        let shadow_pool = shadow_pool(connection, &shadow)?;
        let mut timings = Timings {
            setup: started.elapsed(),
            ..Timings::default()
        };

        let mut replays: Vec<Replaying> = projections
            .iter()
            .map(|(name, _, spec)| Replaying::new(name, spec, &shadow_pool, options.batch_size))
            .collect();
        let built = async {
            // Fill, then go round again until one pass finds less than a batch to do.
            let to_the_end = vec![None; replays.len()];
            let mut fill =
                async |replays: &mut [Replaying], waits: &mut Waits| -> Result<(), RebuildError> {
                    loop {
                        let applied = replay(
                            jetstream,
                            replays,
                            &to_the_end,
                            Phase::Filling,
                            started,
                            &mut progress,
                            waits,
                        )
                        .await?;
                        if applied < options.batch_size as u64 {
                            return Ok(());
                        }
                    }
                };
            let filling = Instant::now();
            fill(&mut replays, &mut timings.fill_waits).await?;
            timings.fill = filling.elapsed();
            timings.filled = replays.iter().map(|replay| replay.events).sum();
            if !deferred_indexes.is_empty() {
                // Built from the filled copies in one sort each; then the copies catch up on
                // what the log got meanwhile, so the switch has little to apply under its
                // lock.
                let indexing = Instant::now();
                control.batch_execute(&deferred_indexes.join(";\n")).await?;
                timings.indexes = indexing.elapsed();
                tracing::info!(
                    read_model = model.name,
                    indexes = deferred_indexes.len(),
                    seconds = timings.indexes.as_secs_f64(),
                    "rebuild built the copies' deferred indexes"
                );
                let catching_up = Instant::now();
                fill(&mut replays, &mut Waits::default()).await?;
                timings.catch_up = catching_up.elapsed();
            }
            let switch_started = Instant::now();
            switch(
                &mut control,
                jetstream,
                model,
                &shadow,
                &mut replays,
                options,
                started,
                &mut progress,
            )
            .await?;
            Ok::<_, RebuildError>(switch_started.elapsed())
        }
        .await;
        // The lanes stop before the lock is let go, however the rebuild ended: one left
        // applying could write through the search path of a rebuild that comes after.
        for replaying in &mut replays {
            replaying.stop().await;
        }
        let switch_time = built?;
        control
            .batch_execute(&format!("DROP SCHEMA {shadow} CASCADE"))
            .await?;
        Ok(Rebuilt {
            projections: replays
                .iter()
                .map(|replay| (replay.name, replay.events, replay.position))
                .collect(),
            poison: replays.iter().map(|replay| replay.poison).sum(),
            switch_time,
            timings,
            elapsed: started.elapsed(),
        })
    }
    .await;
    // Closing the session releases the advisory lock.
    drop(control);
    let _ = driver.await;
    outcome
}

/// The model's projections as [`crate::projections`] lists them: name, version, consumer.
fn projections_of(model: &ReadModel) -> Vec<(&'static str, i32, DurableSpec)> {
    crate::projections()
        .into_iter()
        .filter(|(name, _, _)| model.projections.contains(name))
        .collect()
}

/// Indexes that no projection reads while it applies, which cost a rebuild more row by row
/// than built once the copies are full: the copies get them after the fill. Inserting into
/// the messages copy with both in place took 2.2–2.3 s for 200,000 rows in `psql`, without
/// them 1.35 s, and building them after 0.26 s.
const BUILT_AFTER_FILL: &[&str] = &["messages_v1_by_send_time", "messages_v1_by_client_msg_id"];

/// Creates the shadow schema afresh with an empty copy of each table, named, keyed and
/// indexed as the live one, and an empty registry. Returns the statements that make the
/// copies' [`BUILT_AFTER_FILL`] indexes.
///
/// The projections' batches end by advancing their registry row; on the copies' connections
/// that statement finds the shadow registry, which has no rows, so it touches neither the
/// live registry nor any row the lanes would queue on: with a row, each lane's batch waited
/// at its end for the other lane to commit. The rebuild keeps each copy's position itself
/// and writes it to the live registry at the switch.
async fn create_copies(
    client: &tokio_postgres::Client,
    model: &ReadModel,
    shadow: &str,
) -> Result<Vec<String>, RebuildError> {
    let mut deferred = Vec::new();
    client
        .batch_execute(&format!(
            "DROP SCHEMA IF EXISTS {shadow} CASCADE; CREATE SCHEMA {shadow};
             CREATE TABLE {shadow}.projections (LIKE public.projections INCLUDING ALL);"
        ))
        .await?;
    for table in model.tables {
        let mut statements = vec![format!(
            "CREATE TABLE {shadow}.{table} (LIKE public.{table} INCLUDING ALL EXCLUDING INDEXES)"
        )];
        // Keys with their constraint names, then the other indexes with theirs, so the
        // copy is what the migrations made and later migrations find what they name.
        let constraints = client
            .query(
                "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint
                 WHERE conrelid = ('public.' || $1)::regclass AND contype IN ('p', 'u', 'x')
                 ORDER BY conname",
                &[table],
            )
            .await?;
        for row in constraints {
            let name: String = row.get(0);
            let definition: String = row.get(1);
            statements.push(format!(
                "ALTER TABLE {shadow}.{table} ADD CONSTRAINT {name} {definition}"
            ));
        }
        let indexes = client
            .query(
                "SELECT c.relname::text, pg_get_indexdef(i.indexrelid)
                 FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
                 WHERE i.indrelid = ('public.' || $1)::regclass
                   AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)
                 ORDER BY 2",
                &[table],
            )
            .await?;
        for row in indexes {
            let name: String = row.get(0);
            let live_definition: String = row.get(1);
            let definition = live_definition.replacen(
                &format!(" ON public.{table} "),
                &format!(" ON {shadow}.{table} "),
                1,
            );
            if BUILT_AFTER_FILL.contains(&name.as_str()) {
                deferred.push(definition);
            } else {
                statements.push(definition);
            }
        }
        client.batch_execute(&statements.join(";\n")).await?;
    }
    Ok(deferred)
}

/// Connections that see the copies first and every other table as it is.
///
/// Their commits do not wait for the WAL to reach the disk (`synchronous_commit` off): the
/// lanes then go on to their next batch at once instead of waiting for a flush, which made
/// rebuilds about a tenth faster (docs/performance.md, rebuild). Nothing is less durable for
/// it. The copies count for nothing until the switch, whose commit waits for the WAL up to
/// it, and so for every batch committed before it; and a rebuild that dies before the
/// switch starts again from empty copies.
fn shadow_pool(connection: &tokio_postgres::Config, shadow: &str) -> Result<Pool, RebuildError> {
    let mut config = connection.clone();
    config.options(format!(
        "-c search_path={shadow},public -c synchronous_commit=off"
    ));
    let manager = Manager::from_config(
        config,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(LANES)
        .runtime(Runtime::Tokio1)
        .build()
        .map_err(|error| RebuildError::Pool(error.to_string()))
}

/// How many events the reader hands over at a time.
const READ_CHUNK: usize = 512;
/// How many chunks the reader may be ahead of the projections.
const READ_AHEAD_CHUNKS: usize = 16;

/// Replays each projection's events after its position up to its limit (`None`: the end of
/// the stream as it is when the pass begins). Each stream is read once for all the
/// projections that read it, by a task that reads ahead while the projections apply; returns
/// how many events were applied in all, and adds what it waited for to `waits`.
async fn replay(
    jetstream: &async_nats::jetstream::Context,
    replays: &mut [Replaying],
    limits: &[Option<u64>],
    phase: Phase,
    started: Instant,
    progress: &mut (impl FnMut(&Progress) + Send),
    waits: &mut Waits,
) -> Result<u64, RebuildError> {
    debug_assert!(
        replays
            .iter()
            .all(|replaying| replaying.in_flight.is_empty()),
        "a pass begins with every batch of the pass before applied"
    );
    let mut streams: Vec<String> = replays
        .iter()
        .map(|replay| replay.spec.stream.clone())
        .collect();
    streams.sort();
    streams.dedup();
    let mut applied = 0;
    for stream in streams {
        let readers: Vec<usize> = (0..replays.len())
            .filter(|&index| {
                replays[index].spec.stream == stream
                    && limits[index].is_none_or(|limit| limit > replays[index].position)
            })
            .collect();
        let Some(start) = readers.iter().map(|&index| replays[index].position).min() else {
            continue;
        };
        // The last sequence any of them wants, when all have a limit.
        let until: Option<u64> = readers
            .iter()
            .map(|&index| limits[index])
            .collect::<Option<Vec<u64>>>()
            .and_then(|limits| limits.into_iter().max());
        let target = match until {
            Some(until) => until,
            None => last_sequence(jetstream, &stream).await?,
        };
        for &index in &readers {
            replays[index].began.get_or_insert_with(Instant::now);
        }
        let (chunks, mut received) = tokio::sync::mpsc::channel(READ_AHEAD_CHUNKS);
        let reader = tokio::spawn(read_ahead(
            jetstream.clone(),
            stream.clone(),
            start + 1,
            until,
            chunks,
        ));
        let mut last_read = start;
        loop {
            let waiting = Instant::now();
            let Some(chunk) = received.recv().await else {
                break;
            };
            waits.log += waiting.elapsed();
            for event in chunk? {
                last_read = event.stream_sequence;
                let takers: Vec<usize> = readers
                    .iter()
                    .copied()
                    .filter(|&index| {
                        let replay = &replays[index];
                        event.stream_sequence > replay.position
                            && limits[index].is_none_or(|limit| event.stream_sequence <= limit)
                            && replay.spec.reads(&event.subject)
                    })
                    .collect();
                let mut event = Some(event);
                for (taken, &index) in takers.iter().enumerate() {
                    let replay = &mut replays[index];
                    let event = if taken + 1 == takers.len() {
                        event.take()
                    } else {
                        event.clone()
                    };
                    replay.pending.extend(event);
                    if replay.pending.len() >= replay.batch_size {
                        let waiting = Instant::now();
                        applied += replay.flush().await?;
                        waits.lanes += waiting.elapsed();
                        progress(&replay.progress(phase, target, started));
                    }
                }
            }
        }
        reader
            .await
            .map_err(|error| RebuildError::Log(format!("the log reader stopped: {error}")))?;
        for &index in &readers {
            let replay = &mut replays[index];
            let waiting = Instant::now();
            if !replay.pending.is_empty() {
                applied += replay.flush().await?;
            }
            replay.drain().await?;
            waits.lanes += waiting.elapsed();
            progress(&replay.progress(phase, target, started));
            // Everything up to here that it reads is applied; what it does not read need
            // not be read again.
            let reached = limits[index].map_or(last_read, |limit| limit.min(last_read));
            replay.position = replay.position.max(reached);
        }
    }
    Ok(applied)
}

/// A stream's last sequence now.
async fn last_sequence(
    jetstream: &async_nats::jetstream::Context,
    stream: &str,
) -> Result<u64, RebuildError> {
    let mut stream = jetstream
        .get_stream(stream)
        .await
        .map_err(|error| RebuildError::Log(error.to_string()))?;
    Ok(stream
        .info()
        .await
        .map_err(|error| RebuildError::Log(error.to_string()))?
        .state
        .last_sequence)
}

/// Reads `stream` from `start` to its end (or to `until`) and sends the events on in
/// chunks; stops early when nobody takes them any more.
async fn read_ahead(
    jetstream: async_nats::jetstream::Context,
    stream: String,
    start: u64,
    until: Option<u64>,
    chunks: tokio::sync::mpsc::Sender<Result<Vec<RecordedEvent>, RebuildError>>,
) {
    // The whole stream, filtered by the projections. With a projection's several filter
    // subjects the ordered consumer kept nats-server at 100% CPU and the rebuild at 3,800
    // events/s (`jetim bench rebuild`, 200,000 messages); unfiltered, nats-server idles at 7%.
    // Skipping what a projection does not read is cheap.
    let mut replay = match Replay::start(&jetstream, &stream, start, Vec::new()).await {
        Ok(replay) => replay,
        Err(error) => {
            let _ = chunks.send(Err(error.into())).await;
            return;
        }
    };
    let mut chunk = Vec::with_capacity(READ_CHUNK);
    while let Some(event) = replay.next().await {
        let event = match event {
            Ok(event) => event,
            Err(error) => {
                let _ = chunks.send(Err(error.into())).await;
                return;
            }
        };
        if until.is_some_and(|until| event.stream_sequence > until) {
            break;
        }
        chunk.push(event);
        if chunk.len() == READ_CHUNK && chunks.send(Ok(std::mem::take(&mut chunk))).await.is_err() {
            return;
        }
    }
    if !chunk.is_empty() {
        let _ = chunks.send(Ok(chunk)).await;
    }
}

/// How many connections a projection whose batches split by key
/// ([`AnyProjection::partition_key`]) applies a batch on at once. Three did no better on two
/// cores (`jetim bench rebuild`, in turns: 26,300–26,600 events/s against 27,500–28,000).
const LANES: usize = 2;

/// How many batches a projection may have handed to its lanes and not yet seen applied.
/// Each lane applies its parts in order, so a lane that finishes its part of one batch goes
/// on to its part of the next instead of waiting for the slower lane.
const BATCHES_IN_FLIGHT: usize = 2;

/// A part of a batch for a lane, and where to say how it went.
type LaneWork = (
    Vec<RecordedEvent>,
    tokio::sync::oneshot::Sender<Result<(u64, u64), RebuildError>>,
);

/// A batch handed to the lanes: its last stream sequence, and a reply per part.
struct InFlight {
    last: u64,
    replies: Vec<tokio::sync::oneshot::Receiver<Result<(u64, u64), RebuildError>>>,
}

/// One projection's replay into its copy, resumable from where it stopped.
struct Replaying {
    name: &'static str,
    spec: DurableSpec,
    /// A task per lane, each with its own instance of the projection: one, or [`LANES`]
    /// when its batches split by key. A conversation's events always go to the same lane.
    lanes: Vec<tokio::sync::mpsc::Sender<LaneWork>>,
    /// The lanes' tasks, stopped by [`Replaying::stop`] or when this is dropped.
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// What a batch splits by.
    key: Option<fn(&RecordedEvent) -> &str>,
    batch_size: usize,
    /// Events taken for the next batch.
    pending: Vec<RecordedEvent>,
    /// Batches handed to the lanes, oldest first.
    in_flight: std::collections::VecDeque<InFlight>,
    /// Every event up to this stream sequence that the projection reads is applied.
    position: u64,
    /// When the rebuild began reading its stream.
    began: Option<Instant>,
    events: u64,
    poison: u64,
}

impl Replaying {
    fn new(name: &'static str, spec: &DurableSpec, pool: &Pool, batch_size: usize) -> Self {
        let projection = || {
            AnyProjection::new(name, pool.clone())
                .expect("every read model's projection is registered")
        };
        let first = projection();
        let key = first.partition_key();
        let mut projections = vec![first];
        if key.is_some() {
            projections.extend((1..LANES).map(|_| projection()));
        }
        let (lanes, tasks) = projections
            .into_iter()
            .map(|projection| {
                let (work, queue) = tokio::sync::mpsc::channel(BATCHES_IN_FLIGHT + 1);
                (work, tokio::spawn(lane(name, projection, queue)))
            })
            .unzip();
        Self {
            name,
            spec: spec.clone(),
            lanes,
            tasks,
            key,
            batch_size: batch_size.max(1),
            pending: Vec::new(),
            in_flight: std::collections::VecDeque::new(),
            position: 0,
            began: None,
            events: 0,
            poison: 0,
        }
    }

    /// Hands the pending batch to the lanes, split by key, and waits for the oldest batch
    /// while more than [`BATCHES_IN_FLIGHT`] are out; returns how many events it held.
    async fn flush(&mut self) -> Result<u64, RebuildError> {
        let batch = std::mem::take(&mut self.pending);
        let Some(last) = batch.last().map(|event| event.stream_sequence) else {
            return Ok(0);
        };
        let taken = batch.len() as u64;
        let mut parts: Vec<Vec<RecordedEvent>> = vec![Vec::new(); self.lanes.len()];
        for event in batch {
            let lane = self.key.map_or(0, |key| {
                let mut hasher = std::hash::DefaultHasher::new();
                std::hash::Hash::hash(key(&event), &mut hasher);
                std::hash::Hasher::finish(&hasher) as usize % parts.len()
            });
            parts[lane].push(event);
        }
        let mut replies = Vec::with_capacity(parts.len());
        for (queue, part) in self.lanes.iter().zip(parts) {
            if part.is_empty() {
                continue;
            }
            let (reply, replied) = tokio::sync::oneshot::channel();
            queue
                .send((part, reply))
                .await
                .map_err(|_| self.lane_stopped())?;
            replies.push(replied);
        }
        self.in_flight.push_back(InFlight { last, replies });
        while self.in_flight.len() > BATCHES_IN_FLIGHT {
            self.settle_oldest().await?;
        }
        Ok(taken)
    }

    /// Waits until every batch handed to the lanes is applied.
    async fn drain(&mut self) -> Result<(), RebuildError> {
        while !self.in_flight.is_empty() {
            self.settle_oldest().await?;
        }
        Ok(())
    }

    /// Waits for the oldest batch in flight and counts it.
    async fn settle_oldest(&mut self) -> Result<(), RebuildError> {
        let Some(batch) = self.in_flight.pop_front() else {
            return Ok(());
        };
        for replied in batch.replies {
            let (applied, poison) = replied.await.map_err(|_| self.lane_stopped())??;
            self.events += applied;
            self.poison += poison;
        }
        self.position = batch.last;
        Ok(())
    }

    /// Stops the lanes, whatever they are doing, and waits until they have: a part being
    /// applied is left uncommitted.
    async fn stop(&mut self) {
        self.lanes.clear();
        for task in self.tasks.drain(..) {
            task.abort();
            let _ = task.await;
        }
        self.in_flight.clear();
    }

    fn lane_stopped(&self) -> RebuildError {
        RebuildError::Apply {
            projection: self.name,
            error: "a lane stopped".to_owned(),
        }
    }

    fn progress(&self, phase: Phase, target: u64, started: Instant) -> Progress {
        Progress {
            projection: self.name,
            phase,
            stream_sequence: self.position,
            target,
            events: self.events,
            elapsed: self.began.unwrap_or(started).elapsed(),
        }
    }
}

impl Drop for Replaying {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// A lane: applies the parts it is handed, in order, until the replay lets go of it or a
/// part fails.
async fn lane(
    name: &'static str,
    mut projection: AnyProjection,
    mut queue: tokio::sync::mpsc::Receiver<LaneWork>,
) {
    while let Some((part, reply)) = queue.recv().await {
        let outcome = apply(name, &mut projection, part).await;
        let failed = outcome.is_err();
        let _ = reply.send(outcome);
        if failed {
            return;
        }
    }
}

/// Applies one batch as the live consumer would: a poison event is skipped (the live consumer
/// terminated it too), a transient failure is tried again. Returns the events applied and
/// skipped.
async fn apply(
    name: &'static str,
    projection: &mut AnyProjection,
    mut batch: Vec<RecordedEvent>,
) -> Result<(u64, u64), RebuildError> {
    let mut attempt = 0;
    let mut deadlocks = 0;
    let mut poison = 0;
    while !batch.is_empty() {
        match projection.apply(&batch).await {
            Ok(()) => break,
            Err(HandleError::Poison {
                stream_sequence,
                reason,
            }) => {
                tracing::warn!(
                    projection = name,
                    stream_sequence,
                    %reason,
                    "rebuild skips an event the projection cannot apply"
                );
                poison += 1;
                batch.retain(|event| event.stream_sequence != stream_sequence);
            }
            Err(HandleError::Transient(error)) => {
                // Projections apply side by side and some share rows, so two can deadlock;
                // Postgres fails one, which is simply applied again and does not count.
                if is_deadlock(error.as_ref()) && deadlocks < DEADLOCK_RETRIES {
                    deadlocks += 1;
                    continue;
                }
                attempt += 1;
                if attempt >= APPLY_ATTEMPTS {
                    return Err(RebuildError::Apply {
                        projection: name,
                        error: error.to_string(),
                    });
                }
                tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
            }
        }
    }
    Ok((batch.len() as u64, poison))
}

/// Locks the live tables, brings the copies to the live position and puts them in place,
/// in one transaction; tries again if the lock cannot be had in time.
#[allow(clippy::too_many_arguments)]
async fn switch(
    control: &mut tokio_postgres::Client,
    jetstream: &async_nats::jetstream::Context,
    model: &'static ReadModel,
    shadow: &str,
    replays: &mut [Replaying],
    options: Options,
    started: Instant,
    progress: &mut (impl FnMut(&Progress) + Send),
) -> Result<(), RebuildError> {
    for _ in 0..SWITCH_ATTEMPTS {
        match try_switch(
            control, jetstream, model, shadow, replays, options, started, progress,
        )
        .await
        {
            Err(RebuildError::Db(error)) if is_lock_failure(&error) => {
                tracing::debug!(read_model = model.name, %error, "switch could not lock; trying again");
                tokio::time::sleep(SWITCH_RETRY_DELAY).await;
            }
            outcome => return outcome,
        }
    }
    Err(RebuildError::SwitchLocked(model.name))
}

#[allow(clippy::too_many_arguments)]
async fn try_switch(
    control: &mut tokio_postgres::Client,
    jetstream: &async_nats::jetstream::Context,
    model: &'static ReadModel,
    shadow: &str,
    replays: &mut [Replaying],
    options: Options,
    started: Instant,
    progress: &mut (impl FnMut(&Progress) + Send),
) -> Result<(), RebuildError> {
    let live_tables: Vec<String> = model
        .tables
        .iter()
        .map(|table| format!("public.{table}"))
        .collect();
    let transaction = control.transaction().await?;
    // The live projector and readers wait from here to the commit. Taking the tables before
    // the registry rows is the order the projector takes them in, so the two cannot deadlock.
    // The commit waits for the disk, and with it every batch the lanes committed without
    // waiting ([`shadow_pool`]), whatever the database's own setting.
    transaction
        .batch_execute(&format!(
            "SET LOCAL lock_timeout = '{SWITCH_LOCK_TIMEOUT}';
             SET LOCAL synchronous_commit = on;
             LOCK TABLE {} IN ACCESS EXCLUSIVE MODE",
            live_tables.join(", ")
        ))
        .await?;
    let positions = transaction
        .query(
            "SELECT name, stream_sequence FROM public.projections
             WHERE name = ANY($1) AND active FOR UPDATE",
            &[&model.projections],
        )
        .await?;
    let limits: Vec<Option<u64>> = replays
        .iter()
        .map(|replay| {
            Some(
                positions
                    .iter()
                    .find(|row| row.get::<_, &str>(0) == replay.name)
                    .map_or(0, |row| u64::try_from(row.get::<_, i64>(1)).unwrap_or(0)),
            )
        })
        .collect();
    replay(
        jetstream,
        replays,
        &limits,
        Phase::Switching,
        started,
        progress,
        &mut Waits::default(),
    )
    .await?;
    let mut statements = Vec::new();
    if options.keep_old {
        let retired = format!("jetim_retired_{}", model.name);
        statements.push(format!(
            "DROP SCHEMA IF EXISTS {retired} CASCADE; CREATE SCHEMA {retired}"
        ));
        for table in &live_tables {
            statements.push(format!("ALTER TABLE {table} SET SCHEMA {retired}"));
        }
    } else {
        statements.push(format!("DROP TABLE {}", live_tables.join(", ")));
    }
    for table in model.tables {
        statements.push(format!("ALTER TABLE {shadow}.{table} SET SCHEMA public"));
    }
    transaction.batch_execute(&statements.join(";\n")).await?;
    for replay in replays.iter() {
        debug_assert!(
            replay.in_flight.is_empty(),
            "positions of applied batches only"
        );
        let position = i64::try_from(replay.position).unwrap_or(i64::MAX);
        transaction
            .execute(
                "UPDATE public.projections
                 SET stream_sequence = GREATEST(stream_sequence, $2),
                     rebuilt_at = now(), rebuilds = rebuilds + 1
                 WHERE name = $1 AND active",
                &[&replay.name, &position],
            )
            .await?;
    }
    transaction.commit().await?;
    Ok(())
}

/// Whether applying failed because Postgres broke a deadlock by failing this transaction.
fn is_deadlock(error: &(dyn std::error::Error + Send + Sync + 'static)) -> bool {
    error
        .downcast_ref::<tokio_postgres::Error>()
        .and_then(tokio_postgres::Error::code)
        .is_some_and(|code| *code == tokio_postgres::error::SqlState::T_R_DEADLOCK_DETECTED)
}

fn is_lock_failure(error: &tokio_postgres::Error) -> bool {
    use tokio_postgres::error::SqlState;
    error.code().is_some_and(|code| {
        *code == SqlState::LOCK_NOT_AVAILABLE || *code == SqlState::T_R_DEADLOCK_DETECTED
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use jetim_schemas::event::Event as _;
    use jetim_schemas::events::msg::MsgSent;

    /// The `seq`th message of `si_a_b`, as the log holds it.
    fn message_event(seq: u64) -> RecordedEvent {
        let message = MsgSent {
            conversation_id: "si_a_b".into(),
            seq,
            server_msg_id: format!("s{seq}"),
            client_msg_id: format!("c{seq}"),
            send_id: "a".into(),
            recv_id: "b".into(),
            group_id: String::new(),
            sender_platform_id: 5,
            sender_nickname: "a".into(),
            sender_face_url: String::new(),
            session_type: 1,
            msg_from: 100,
            content_type: 101,
            content: r#"{"content":"hi"}"#.into(),
            send_time: 1,
            create_time: 1,
            options: Default::default(),
            offline_push: None,
            at_user_ids: Vec::new(),
            attached_info: String::new(),
            ex: String::new(),
        };
        RecordedEvent {
            stream_sequence: seq,
            subject: jetim_streams::subject::Subject::timeline("si_a_b")
                .unwrap()
                .as_str()
                .to_owned(),
            kind: MsgSent::KIND.to_owned(),
            version: MsgSent::VERSION,
            actor: "a".into(),
            seq: Some(seq),
            stored_at_ms: 0,
            headers: async_nats::HeaderMap::new(),
            payload: serde_json::to_vec(&message).unwrap().into(),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn stopped_lanes_stop_at_once_and_leave_their_batch_uncommitted() {
        let database = jetim_common::testing::TestDatabase::migrated().await;
        let pool = database.pool();
        let connect = async || {
            let (client, connection) = tokio_postgres::connect(&database.config.url, NoTls)
                .await
                .unwrap();
            tokio::spawn(connection);
            client
        };
        let other = connect().await;
        // Another session holds the table, so the lane's batch waits on it.
        other
            .batch_execute("BEGIN; LOCK TABLE messages_v1 IN ACCESS EXCLUSIVE MODE")
            .await
            .unwrap();
        let mut replaying = Replaying::new(messages::NAME, &messages::consumer_spec(), &pool, 10);
        replaying.pending = (1..=3).map(message_event).collect();
        replaying.flush().await.unwrap();
        // Asked from outside the locking transaction, which would see one snapshot of it.
        let watcher = connect().await;
        let mut waiting = false;
        for _ in 0..250 {
            waiting = watcher
                .query_one(
                    "SELECT count(*) > 0 FROM pg_stat_activity
                     WHERE datname = current_database() AND wait_event_type = 'Lock'",
                    &[],
                )
                .await
                .unwrap()
                .get(0);
            if waiting {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(waiting, "the lane's batch waits for the lock");

        tokio::time::timeout(Duration::from_secs(5), replaying.stop())
            .await
            .expect("stopping does not wait for the batch");
        assert_eq!(replaying.position, 0, "the batch was never applied");
        other.batch_execute("ROLLBACK").await.unwrap();
        drop(replaying);
        drop(pool);
        tokio::time::sleep(Duration::from_millis(300)).await;
        let rows: i64 = watcher
            .query_one("SELECT count(*) FROM messages_v1", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(rows, 0, "nothing of the stopped batch was committed");
    }

    #[tokio::test]
    async fn the_lanes_connections_see_the_copies_first_and_commit_without_waiting_for_the_disk() {
        let database = jetim_common::testing::TestDatabase::migrated().await;
        let config: tokio_postgres::Config = database.config.url.parse().unwrap();
        let lanes = shadow_pool(&config, "rebuild_shadow_test").unwrap();
        let client = lanes.get().await.unwrap();
        let setting = async |name: &str| -> String {
            client
                .query_one(&format!("SHOW {name}"), &[])
                .await
                .unwrap()
                .get(0)
        };
        assert_eq!(setting("synchronous_commit").await, "off");
        assert_eq!(setting("search_path").await, "rebuild_shadow_test,public");
    }

    #[test]
    fn every_projection_belongs_to_exactly_one_read_model() {
        for (name, _, _) in crate::projections() {
            let owners = READ_MODELS
                .iter()
                .filter(|model| model.projections.contains(&name))
                .count();
            assert_eq!(owners, 1, "{name}");
        }
    }
}
