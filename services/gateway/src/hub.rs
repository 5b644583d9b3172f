//! The connections this gateway holds, and what reaches them through NATS.
//!
//! Pushes (2001) of stored messages come once for all their recipients on
//! `im.fanout.<conversationID>` (the push service's `push.fanout: conversation`, the
//! default), which one subscription to `im.fanout.*` hears for every conversation: the hub
//! writes each to the connections it holds of the users named, encoding the frame once per
//! envelope and compression. Pushes for one user come on `im.deliver.<userID>`: online-only
//! messages, and every push under `push.fanout: per_user`. By default
//! ([`DeliverySubscription::Shared`]) one subscription to `im.deliver.*` serves every user,
//! and pushes for users with no connection here are dropped; with
//! [`DeliverySubscription::PerUser`] the gateway subscribes to a user's subject while it
//! holds a connection of that user. async-nats gives every subscription a tokio channel,
//! which allocates 32 slots of 184 bytes when it is made: per user, that and the task
//! reading it were about 6.5 KB of every idle connection (`jetim bench connect` with
//! heaptrack).
//!
//! One subscription to `im.session.*` serves session control for every user: other
//! gateways' new connections, for the multi-login policy, and force logouts, both ending in
//! 2002 and a close. Session control comes once per login, so hearing every user's costs
//! little.
//!
//! The hub writes its part of the user's presence to the `IM_PRESENCE` bucket whenever the
//! user's platforms on this gateway change, confirms it periodically, and announces changes
//! on `im.presence.<userID>`, which connections that subscribed to the user's status (2005)
//! hear through this gateway's subscription to that subject.

use std::collections::HashMap;
use std::hash::{BuildHasher as _, RandomState};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::socket::{Message, close_code};
use futures::StreamExt as _;
use jetim_common::auth::{LoginPolicy, Platform, TokenService};
use jetim_common::config::DeliverySubscription;
use jetim_common::presence::PresenceStore;
use jetim_common::session::{self, SessionControl};
use jetim_common::shutdown::CancellationToken;
use jetim_messaging::delivery::Fanout;
use jetim_schemas::openim::sdkws::{SubUserOnlineStatusElem, SubUserOnlineStatusTips};
use jetim_streams::headers;
use jetim_streams::subject::{LiveKind, every_fanout, every_live, live, live_user};
use prost::Message as _;
use tokio::sync::watch;
use tokio::task::AbortHandle;

use crate::connection::Connection;
use crate::envelope::Reply;
use crate::handshake::Envelope;
use crate::lock;

/// 2001: a pushed message.
pub const PUSH_MSG: i32 = 2001;
/// 2002: kicked; the connection closes right after.
pub const KICK_ONLINE: i32 = 2002;
/// 2005: a subscribed user's online status (reply and push).
pub const SUB_USER_ONLINE_STATUS: i32 = 2005;

/// How long a new connection waits for its user's subscriptions to be in place.
const SUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(5);
/// Presence writes are serialised per user through this many locks.
const PRESENCE_LOCKS: usize = 64;

struct UserSlot {
    connections: Vec<Arc<Connection>>,
    /// The user's own delivery subscription, under [`DeliverySubscription::PerUser`].
    follower: Option<Follower>,
}

/// The task that reads one user's deliveries.
struct Follower {
    /// True once the subscription is in place.
    ready: watch::Receiver<bool>,
    task: AbortHandle,
}

struct WatchSlot {
    watchers: Vec<Arc<Connection>>,
    task: AbortHandle,
}

/// Every connection of this gateway, by user.
pub struct Hub {
    instance: String,
    nats: async_nats::Client,
    /// The connection to hear `im.fanout.*` on: `nats`, or the one this process' push
    /// service publishes on (see [`jetim_messaging::delivery::LocalFanout`]).
    fanouts_on: async_nats::Client,
    presence: PresenceStore,
    tokens: TokenService,
    policy: LoginPolicy,
    deliveries: DeliverySubscription,
    next_id: AtomicU64,
    live: AtomicUsize,
    users: Mutex<HashMap<String, UserSlot>>,
    watched: Mutex<HashMap<String, WatchSlot>>,
    presence_locks: Vec<tokio::sync::Mutex<()>>,
    hasher: RandomState,
    drained: tokio::sync::Notify,
}

/// The subscriptions one gateway holds for all its users.
pub struct SharedSubscriptions {
    /// `im.session.*`.
    pub sessions: async_nats::Subscriber,
    /// `im.fanout.*`.
    pub fanouts: async_nats::Subscriber,
    /// `im.deliver.*`, unless the gateway subscribes per user.
    pub deliveries: Option<async_nats::Subscriber>,
}

/// What a push is tagged with for its recipients' connections: the operationID of the
/// request that sent its message, and that message's clientMsgID and sender (whose own push
/// waits for the reply to its request).
#[derive(Debug, Default)]
struct Tags {
    operation_id: String,
    client_msg_id: String,
    sender: String,
}

impl Tags {
    /// As a push's NATS headers give them.
    fn of(headers: Option<&async_nats::HeaderMap>) -> Self {
        let tag = |name: &str| {
            headers
                .and_then(|headers| headers::text(headers, name))
                .unwrap_or_default()
                .to_owned()
        };
        Self {
            operation_id: tag(headers::OPERATION),
            client_msg_id: tag(headers::CLIENT_MSG_ID),
            sender: tag(headers::SENDER),
        }
    }
}

/// Queues the 2001 push of `payload` to each of `connections`, tagged as `tags` says,
/// encoding its frame once for each envelope and compression among them.
fn push_to(connections: &[Arc<Connection>], tags: &Tags, payload: &[u8]) {
    let reply = Reply {
        req_identifier: PUSH_MSG,
        msg_incr: String::new(),
        operation_id: tags.operation_id.clone(),
        err_code: 0,
        err_msg: String::new(),
        data: Some(payload.to_vec()),
    };
    // At most four encodings (two envelopes, gzip or not): a list beats a map.
    let mut frames: Vec<((Envelope, bool), Message)> = Vec::with_capacity(1);
    for connection in connections {
        let encoding = connection.encoding();
        let frame = match frames.iter().find(|(done, _)| *done == encoding) {
            Some((_, frame)) => frame.clone(),
            None => {
                let frame = connection.encode(&reply);
                frames.push((encoding, frame.clone()));
                frame
            }
        };
        connection.push(frame, &tags.sender, &tags.client_msg_id);
    }
}

/// Sends each connection 2002 and closes it.
fn close_kicked(user_id: &str, kicked: &[Arc<Connection>]) {
    let kick = Reply {
        req_identifier: KICK_ONLINE,
        ..Reply::default()
    };
    for connection in kicked {
        tracing::info!(user = %user_id, platform = connection.platform.id(), "kicked");
        connection.close(
            close_code::NORMAL,
            "kicked: logged in elsewhere or logged out",
            Some(connection.encode(&kick)),
        );
    }
}

/// The push service of this process hands its fan-out pushes to the hub directly.
impl jetim_messaging::delivery::LocalFanout for Hub {
    fn deliver_fanout(&self, fanout: &Fanout, headers: Option<&async_nats::HeaderMap>) {
        Hub::deliver_fanout(self, fanout, headers);
    }
}

impl Hub {
    /// A hub for one gateway instance, hearing pushes as `deliveries` says, fan-out pushes
    /// on `fanouts_on` if given, everything else on `nats`.
    pub fn new(
        nats: async_nats::Client,
        fanouts_on: Option<async_nats::Client>,
        presence: PresenceStore,
        tokens: TokenService,
        deliveries: DeliverySubscription,
    ) -> Self {
        let policy = tokens.config().login_policy();
        Self {
            instance: nuid::next().to_string(),
            fanouts_on: fanouts_on.unwrap_or_else(|| nats.clone()),
            nats,
            presence,
            tokens,
            policy,
            deliveries,
            next_id: AtomicU64::new(1),
            live: AtomicUsize::new(0),
            users: Mutex::new(HashMap::new()),
            watched: Mutex::new(HashMap::new()),
            presence_locks: (0..PRESENCE_LOCKS)
                .map(|_| tokio::sync::Mutex::new(()))
                .collect(),
            hasher: RandomState::new(),
            drained: tokio::sync::Notify::new(),
        }
    }

    /// This gateway instance's ID (in presence entries and session control).
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// A number for a new connection.
    pub fn next_connection_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// How many connections this gateway holds.
    pub fn connection_count(&self) -> usize {
        self.live.load(Ordering::Relaxed)
    }

    /// Adds a connection: subscribes to its user's deliveries (once per user, unless one
    /// subscription serves every user), records the presence, and announces it so the login
    /// policy applies to older connections.
    pub async fn register(self: &Arc<Self>, connection: &Arc<Connection>) {
        let user_id = connection.user_id.clone();
        let ready = {
            let mut users = lock(&self.users);
            if let Some(slot) = users.get_mut(&user_id) {
                slot.connections.push(Arc::clone(connection));
                slot.follower
                    .as_ref()
                    .map(|follower| follower.ready.clone())
            } else {
                let follower = (self.deliveries == DeliverySubscription::PerUser).then(|| {
                    let (ready_tx, ready) = watch::channel(false);
                    let task =
                        tokio::spawn(Arc::clone(self).follow_user(user_id.clone(), ready_tx))
                            .abort_handle();
                    Follower { ready, task }
                });
                let ready = follower.as_ref().map(|follower| follower.ready.clone());
                users.insert(
                    user_id.clone(),
                    UserSlot {
                        connections: vec![Arc::clone(connection)],
                        follower,
                    },
                );
                ready
            }
        };
        self.live.fetch_add(1, Ordering::Relaxed);
        metrics::gauge!("jetim_gateway_connections").increment(1.0);
        if let Some(mut ready) = ready {
            if tokio::time::timeout(SUBSCRIBE_TIMEOUT, ready.wait_for(|ready| *ready))
                .await
                .is_err()
            {
                tracing::warn!(user = %user_id, "subscriptions not confirmed; pushes may be missed");
            }
        }
        self.write_presence(&user_id).await;
        let announced = session::announce(
            &self.nats,
            &user_id,
            &SessionControl::Connected {
                gateway: self.instance.clone(),
                connection: connection.id,
                platform_id: connection.platform.id(),
                token: connection.token.clone(),
            },
        )
        .await;
        if let Err(error) = announced {
            tracing::warn!(%error, "the login policy was not applied to other connections");
        }
    }

    /// Removes a connection, its status subscriptions, and (with its user's last
    /// connection) the user's subscriptions.
    pub async fn unregister(&self, connection: &Arc<Connection>) {
        let watching: Vec<String> = lock(&connection.watching).iter().cloned().collect();
        self.unwatch(connection, &watching);
        let removed = {
            let mut users = lock(&self.users);
            let removed = if let Some(slot) = users.get_mut(&connection.user_id) {
                let before = slot.connections.len();
                slot.connections
                    .retain(|held| !Arc::ptr_eq(held, connection));
                let removed = slot.connections.len() < before;
                if slot.connections.is_empty() {
                    if let Some(follower) = &slot.follower {
                        follower.task.abort();
                    }
                    users.remove(&connection.user_id);
                }
                removed
            } else {
                false
            };
            if users.is_empty() {
                self.drained.notify_waiters();
            }
            removed
        };
        if removed {
            self.live.fetch_sub(1, Ordering::Relaxed);
            metrics::gauge!("jetim_gateway_connections").decrement(1.0);
            self.write_presence(&connection.user_id).await;
        }
    }

    fn connections_of(&self, user_id: &str) -> Vec<Arc<Connection>> {
        lock(&self.users)
            .get(user_id)
            .map(|slot| slot.connections.clone())
            .unwrap_or_default()
    }

    /// Writes this gateway's part of `user_id`'s presence (confirming it), and announces a
    /// change of the user's online platforms.
    async fn write_presence(&self, user_id: &str) {
        let stripe =
            usize::try_from(self.hasher.hash_one(user_id) % PRESENCE_LOCKS as u64).unwrap_or(0);
        let _serialised = self.presence_locks[stripe].lock().await;
        let connections: Vec<Arc<Connection>> = self
            .connections_of(user_id)
            .into_iter()
            .filter(|connection| !connection.is_closed())
            .collect();
        let held: Vec<(i32, &str)> = connections
            .iter()
            .map(|connection| (connection.platform.id(), connection.token.as_str()))
            .collect();
        match self
            .presence
            .set_connections(user_id, &self.instance, &held)
            .await
        {
            Ok((before, after)) if before != after => {
                if let Err(error) = self.announce_presence(user_id, &after).await {
                    tracing::warn!(%error, user = %user_id, "presence change not announced");
                }
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, user = %user_id, "presence not written"),
        }
    }

    async fn announce_presence(&self, user_id: &str, platforms: &[i32]) -> anyhow::Result<()> {
        let subject = live(LiveKind::Presence, user_id)?;
        self.nats
            .publish(subject, serde_json::to_vec(platforms)?.into())
            .await?;
        Ok(())
    }

    /// Confirms this gateway's presence entries every third of the presence TTL until
    /// `shutdown`.
    pub async fn confirm_presence(self: Arc<Self>, shutdown: CancellationToken) {
        let every = (self.presence.ttl() / 3).max(Duration::from_secs(1));
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = ticker.tick() => {}
            }
            let users: Vec<String> = lock(&self.users).keys().cloned().collect();
            for user_id in users {
                self.write_presence(&user_id).await;
            }
        }
    }

    /// Closes every connection with `code` and `reason` and waits (up to `wait`) for them
    /// to go.
    pub async fn close_all(&self, code: u16, reason: &str, wait: Duration) {
        let drained = self.drained.notified();
        let connections: Vec<Arc<Connection>> = lock(&self.users)
            .values()
            .flat_map(|slot| slot.connections.clone())
            .collect();
        if connections.is_empty() {
            return;
        }
        for connection in &connections {
            connection.close(code, reason, None);
        }
        let _ = tokio::time::timeout(wait, drained).await;
    }

    /// The user's deliveries, until aborted.
    async fn follow_user(self: Arc<Self>, user_id: String, ready: watch::Sender<bool>) {
        // Boxed, so that the subscribing's state is not part of the task while it waits.
        let subscribed = Box::pin(async {
            let deliver = self
                .nats
                .subscribe(live(LiveKind::Deliver, &user_id)?)
                .await?;
            self.nats.flush().await?;
            anyhow::Ok(deliver)
        })
        .await;
        let _ = ready.send(true);
        match subscribed {
            Ok(mut deliver) => {
                while let Some(message) = deliver.next().await {
                    self.deliver(&user_id, &message);
                }
            }
            Err(error) => {
                tracing::warn!(%error, user = %user_id, "cannot subscribe; no pushes for this user");
            }
        }
    }

    /// Subscribes to every user's session control, and to every user's deliveries unless
    /// the gateway subscribes per user; [`Hub::follow_sessions`] and
    /// [`Hub::follow_deliveries`] serve them. Call before the first connection, so nothing
    /// for it is missed.
    pub async fn subscribe_shared(&self) -> anyhow::Result<SharedSubscriptions> {
        let sessions = self.nats.subscribe(every_live(LiveKind::Session)).await?;
        let fanouts = self.fanouts_on.subscribe(every_fanout()).await?;
        let deliveries = match self.deliveries {
            DeliverySubscription::Shared => {
                Some(self.nats.subscribe(every_live(LiveKind::Deliver)).await?)
            }
            DeliverySubscription::PerUser => None,
        };
        self.nats.flush().await?;
        self.fanouts_on.flush().await?;
        Ok(SharedSubscriptions {
            sessions,
            fanouts,
            deliveries,
        })
    }

    /// Delivers every conversation's fan-out pushes to the connections held here of the
    /// users each names, until the subscription ends. One task, so each conversation's
    /// pushes keep their order.
    pub async fn follow_fanouts(self: Arc<Self>, mut fanouts: async_nats::Subscriber) {
        while let Some(message) = fanouts.next().await {
            self.deliver_fanout_message(&message);
        }
        tracing::error!("the fan-out subscription ended; pushes stop here");
    }

    /// Delivers every user's pushes to the connections held here, until the subscription
    /// ends. One task, so each user's pushes keep their order.
    pub async fn follow_deliveries(self: Arc<Self>, deliveries: async_nats::Subscriber) {
        self.follow_every(LiveKind::Deliver, deliveries, "a push", Self::deliver)
            .await;
        tracing::error!("the delivery subscription ended; pushes stop here");
    }

    /// Applies session control to the connections of its user held here, until the
    /// subscription ends. Nothing here waits on anything but the subscription, so one task
    /// keeps up with every login of the cluster.
    pub async fn follow_sessions(self: Arc<Self>, sessions: async_nats::Subscriber) {
        self.follow_every(
            LiveKind::Session,
            sessions,
            "session control",
            Self::control,
        )
        .await;
        tracing::error!("the session control subscription ended; kicks and logouts stop here");
    }

    /// Hands each message of a subscription to every user's subjects of `kind` to `serve`,
    /// with the user it is for, until the subscription ends. `what` names the messages in
    /// the log.
    async fn follow_every(
        &self,
        kind: LiveKind,
        mut subscription: async_nats::Subscriber,
        what: &str,
        serve: impl Fn(&Self, &str, &async_nats::Message),
    ) {
        while let Some(message) = subscription.next().await {
            let Some(user_id) = live_user(kind, &message.subject) else {
                tracing::warn!(subject = %message.subject, "{what} on a subject of no user");
                continue;
            };
            serve(self, &user_id, &message);
        }
    }

    fn deliver(&self, user_id: &str, message: &async_nats::Message) {
        let connections = self.connections_of(user_id);
        if connections.is_empty() {
            return;
        }
        push_to(
            &connections,
            &Tags::of(message.headers.as_ref()),
            &message.payload,
        );
        metrics::counter!("jetim_gateway_pushes_total").increment(1);
    }

    /// A [`Fanout`] heard on `message`, delivered as [`Hub::deliver_fanout`] says.
    fn deliver_fanout_message(&self, message: &async_nats::Message) {
        match Fanout::decode(message.payload.clone()) {
            Ok(fanout) => self.deliver_fanout(&fanout, message.headers.as_ref()),
            Err(error) => {
                tracing::warn!(subject = %message.subject, %error, "an unreadable fan-out push");
            }
        }
    }

    /// A push for the users a [`Fanout`] names, to the connections held here of each. A
    /// push of several messages goes whole to everyone but their senders, who get each
    /// message alone, tagged for its own sender.
    fn deliver_fanout(&self, fanout: &Fanout, headers: Option<&async_nats::HeaderMap>) {
        let mut reached = 0;
        // With no singles, every connection takes the push whole.
        let (whole, one_by_one): (Vec<Arc<Connection>>, Vec<Arc<Connection>>) = {
            let users = lock(&self.users);
            fanout
                .users
                .iter()
                .filter_map(|user_id| users.get(user_id.as_str()))
                .inspect(|_| reached += 1)
                .flat_map(|slot| slot.connections.iter().cloned())
                .partition(|connection| {
                    !fanout
                        .singles
                        .iter()
                        .any(|single| single.sender == connection.user_id)
                })
        };
        if whole.is_empty() && one_by_one.is_empty() {
            return;
        }
        if fanout.singles.is_empty() {
            push_to(&whole, &Tags::of(headers), &fanout.push);
        } else {
            if !whole.is_empty() {
                push_to(&whole, &Tags::default(), &fanout.push);
            }
            if !one_by_one.is_empty() {
                for single in &fanout.singles {
                    let tags = Tags {
                        operation_id: single.operation_id.clone(),
                        client_msg_id: single.client_msg_id.clone(),
                        sender: single.sender.clone(),
                    };
                    push_to(&one_by_one, &tags, &single.push);
                }
            }
        }
        metrics::counter!("jetim_gateway_pushes_total")
            .increment(reached * fanout.singles.len().max(1) as u64);
    }

    fn control(&self, user_id: &str, message: &async_nats::Message) {
        let connections = self.connections_of(user_id);
        if connections.is_empty() {
            return;
        }
        let control: SessionControl = match serde_json::from_slice(&message.payload) {
            Ok(control) => control,
            Err(error) => {
                tracing::warn!(%error, "unreadable session control ignored");
                return;
            }
        };
        let (gateway, connection, platform_id, token) = match control {
            SessionControl::ForceLogout { platform_id } => {
                // The logout marked the tokens before it announced itself.
                let kicked: Vec<Arc<Connection>> = connections
                    .into_iter()
                    .filter(|held| held.platform.id() == platform_id)
                    .collect();
                close_kicked(user_id, &kicked);
                return;
            }
            SessionControl::Connected {
                gateway,
                connection,
                platform_id,
                token,
            } => (gateway, connection, platform_id, token),
        };
        let Some(new_platform) = Platform::from_id(platform_id) else {
            return;
        };
        // On this gateway, connection numbers say which came later: the announced connection
        // and those after it stay (each newer one has its own announcement to come).
        let kicked: Vec<Arc<Connection>> = connections
            .into_iter()
            .filter(|held| !(gateway == self.instance && held.id >= connection))
            .filter(|held| held.token != token)
            .filter(|held| self.policy.replaces(new_platform, held.platform))
            .collect();
        if kicked.is_empty() {
            return;
        }
        let user_id = user_id.to_owned();
        // The tokens are marked first, so a kicked client that reconnects at once is
        // refused; on the side, so a slow token store holds up no other user's session
        // control.
        let store = self.tokens.clone();
        tokio::spawn(async move {
            let tokens: Vec<(i32, String)> = kicked
                .iter()
                .map(|connection| (connection.platform.id(), connection.token.clone()))
                .collect();
            if let Err(error) = store.kick_tokens(&user_id, &tokens).await {
                tracing::warn!(%error, user = %user_id, "kicked tokens not marked");
            }
            close_kicked(&user_id, &kicked);
        });
    }

    /// Subscribes `connection` to the online status of `user_ids` (2005) and returns their
    /// current status.
    pub async fn watch(
        self: &Arc<Self>,
        connection: &Arc<Connection>,
        user_ids: &[String],
    ) -> anyhow::Result<SubUserOnlineStatusTips> {
        let mut subscribed = false;
        for user_id in user_ids {
            let newly = lock(&connection.watching).insert(user_id.clone());
            if newly && !self.add_watcher(user_id, connection) {
                let changes = self
                    .nats
                    .subscribe(live(LiveKind::Presence, user_id)?)
                    .await?;
                subscribed = true;
                let mut watched = lock(&self.watched);
                if let Some(slot) = watched.get_mut(user_id) {
                    // Another connection got there first; its subscription serves both.
                    slot.watchers.push(Arc::clone(connection));
                } else {
                    let task =
                        tokio::spawn(Arc::clone(self).follow_status(user_id.clone(), changes))
                            .abort_handle();
                    watched.insert(
                        user_id.clone(),
                        WatchSlot {
                            watchers: vec![Arc::clone(connection)],
                            task,
                        },
                    );
                }
            }
        }
        if subscribed {
            // One round trip makes every new subscription live before the status is read,
            // so no change between the read and the subscription is missed.
            self.nats.flush().await?;
        }
        let online = self.presence.online_many(user_ids).await?;
        Ok(SubUserOnlineStatusTips {
            subscribers: user_ids
                .iter()
                .zip(online)
                .map(|(user_id, platforms)| SubUserOnlineStatusElem {
                    user_id: user_id.clone(),
                    online_platform_i_ds: platforms,
                })
                .collect(),
        })
    }

    /// Adds a watcher of `user_id` if the user is already followed.
    fn add_watcher(&self, user_id: &str, connection: &Arc<Connection>) -> bool {
        match lock(&self.watched).get_mut(user_id) {
            Some(slot) => {
                slot.watchers.push(Arc::clone(connection));
                true
            }
            None => false,
        }
    }

    /// Ends `connection`'s subscriptions to the status of `user_ids`.
    pub fn unwatch(&self, connection: &Arc<Connection>, user_ids: &[String]) {
        let mut watching = lock(&connection.watching);
        let mut watched = lock(&self.watched);
        for user_id in user_ids {
            if !watching.remove(user_id) {
                continue;
            }
            if let Some(slot) = watched.get_mut(user_id) {
                slot.watchers
                    .retain(|watcher| !Arc::ptr_eq(watcher, connection));
                if slot.watchers.is_empty() {
                    slot.task.abort();
                    watched.remove(user_id);
                }
            }
        }
    }

    /// Tells the connections watching `user_id` of each change of the user's online
    /// platforms: those a gateway announces on `im.presence.<user>`, and those nobody
    /// announces, when the part of a gateway that died ages out of the presence entry. For
    /// the latter the entry is read again every third of the presence TTL (one read per
    /// watched user per gateway), and a difference from what the watchers last heard is
    /// pushed.
    async fn follow_status(self: Arc<Self>, user_id: String, mut changes: async_nats::Subscriber) {
        let every = (self.presence.ttl() / 3).max(Duration::from_secs(1));
        let mut recheck = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        recheck.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut told = self.presence.online(&user_id).await.ok();
        loop {
            let platforms = tokio::select! {
                change = changes.next() => {
                    let Some(change) = change else { return };
                    let Ok(platforms) = serde_json::from_slice::<Vec<i32>>(&change.payload) else {
                        continue;
                    };
                    platforms
                }
                _ = recheck.tick() => match self.presence.online(&user_id).await {
                    Ok(platforms) if told.as_ref() != Some(&platforms) => platforms,
                    Ok(_) => continue,
                    Err(error) => {
                        tracing::debug!(%error, user = %user_id, "presence not rechecked");
                        continue;
                    }
                },
            };
            told = Some(platforms.clone());
            let tips = SubUserOnlineStatusTips {
                subscribers: vec![SubUserOnlineStatusElem {
                    user_id: user_id.clone(),
                    online_platform_i_ds: platforms,
                }],
            };
            let push = Reply {
                req_identifier: SUB_USER_ONLINE_STATUS,
                data: Some(tips.encode_to_vec()),
                ..Reply::default()
            };
            let watchers = lock(&self.watched)
                .get(&user_id)
                .map(|slot| slot.watchers.clone())
                .unwrap_or_default();
            for watcher in watchers {
                watcher.send(watcher.encode(&push));
            }
        }
    }
}
