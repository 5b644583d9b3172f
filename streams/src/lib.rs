//! jetim's event log on NATS JetStream: the only crate that knows subjects and writes events.
//!
//! - [`definitions`]: the streams, from `streams/*.json`, applied idempotently at start.
//! - [`escape`]: the one reversible mapping from an OpenIM ID to a subject token or KV key.
//! - [`subject`]: typed subject builders; nothing else in jetim formats a subject.
//! - [`append`]: [`EventLog`], the write path (gapless seqs, dedup, conflict retry).
//! - [`consume`]: durable pull consumers for projections, ordered replay for rebuilds.
//! - [`kv`]: KV bucket helpers.
//! - [`record`] and [`headers`]: a stored event as read back, and the headers it carries.
//!
//! A command handler calls [`EventLog::append_to_timeline`]; JetStream acks; a projection's
//! [`consume::run_durable`] loop hands the event to its handler, which commits, then acks.
//!
//! # Streams and subjects
//!
//! Streams are few and subjects many. IDs in subjects are escaped (see [`escape`]):
//! `alice` stays `alice`, `a.b` is written `a=2Eb`.
//!
//! | subject | stream | events | written by | read by |
//! |---|---|---|---|---|
//! | `im.conv.<conversationID>.msg` | `IM_CONV` | `msg.sent`: the conversation timeline; each event has the conversation's gapless seq in `Im-Seq`; notifications (e.g. 2101 revoke tips) in the `n_` twins | [`EventLog::append_to_timeline`] from `/msg/send_msg` and `/msg/revoke_msg` | the `messages` projection; the push service (consumer `push`); `jetim ops audit` |
//! | `im.conv.<conversationID>.read` | `IM_CONV` | `conversation.read`: a member's read position (raise or set) and messages marked read | [`EventLog::append`] from the read routes | the `messages` projection |
//! | `im.conv.<conversationID>.revoke` | `IM_CONV` | `msg.revoked` (deduplicated per message) | [`EventLog::append`] from `/msg/revoke_msg` | the `messages` projection |
//! | `im.conv.<conversationID>.delete` | `IM_CONV` | `msg.deleted` (for one member or everyone), `conversation.cleared` | [`EventLog::append`] from `/msg/delete_msgs`, the clear routes and the admin's physical deletes | the `messages` projection |
//! | `im.conv.sg_<groupID>.group` | `IM_CONV` | a group's state: `group.created`, `group.info.set`, `group.members.joined`, `group.members.left` (quit or kick, with the last seq the leavers may read), `group.applied`, `group.application.handled` (accepting adds the member), `group.owner.transferred`, `group.dismissed`, `group.member.muted`, `group.muted`, `group.members.info.set` | [`EventLog::append`] from the `/group/*` routes, each expecting the group's last event (optimistic concurrency) | the `groups` projection; the push service's member cache (an ordered consumer) |
//! | `im.user.<userID>.account` | `IM_USER` | `user.registered` (first event, appended only onto an empty subject), then `user.updated` | [`EventLog::append`] from `/user/user_register`, the profile routes, the notification-account routes, and the admin registration at start | the `users` projection (`users_v1`); `relations` and `group_profiles` (profile changes in the friend and member logs) |
//! | `im.user.<userID>.command` | `IM_USER` | `user.command.set`, `user.command.deleted` | `/user/process_user_command_*` | the `user_settings` projection (`user_commands_v1`) |
//! | `im.user.<userID>.config` | `IM_USER` | `config.set`, `config.deleted` | `/user/set_user_client_config`, `/user/del_user_client_config` | the `user_settings` projection (`client_configs_v1`) |
//! | `im.user.=.config` | `IM_USER` | the same, app-wide (`=` alone is no escaped ID) | the same routes with userID `""` | the same |
//! | `im.user.<userID>.conversation` | `IM_USER` | `conversation.set`: the owner's settings for one conversation; `conversation.deleted`: conversations taken off the owner's list | `/conversation/set_conversations`, `/conversation/update_conversations_by_user`, `/conversation/delete_conversations` | the `conversation_settings` projection |
//! | `im.user.<userID>.friend` | `IM_USER` | `friend.requested` and `friend.request.handled` (requests addressed to the user, and their answers; an accepted one befriends both ways), `friend.imported`, `friend.deleted`, `friend.updated` (the user's own friendships) | the `/friend/*` request, response, import, delete, remark and update routes | the `relations` projection |
//! | `im.user.<userID>.black` | `IM_USER` | `black.added`, `black.removed` | `/friend/add_black`, `/friend/remove_black` | the `relations` projection |
//!
//! # KV buckets
//!
//! | bucket | key | value | written by | read by |
//! |---|---|---|---|---|
//! | `IM_TOKENS` | escaped userID | the user's token table: platform → token fingerprint → state, issue and expiry time | token issue, force logout | every token check |
//! | `IM_SEND_STATUS` | escaped `<userID>:<operationID>` | 2 sent, 3 failed; expires after a day | `/msg/send_msg` | `/msg/check_msg_is_send_success` |
//! | `IM_PRESENCE` | escaped userID | per gateway instance: the user's platforms there and when last confirmed; ages out after the presence TTL | gateways, as connections come and go, and every third of the TTL | the push service (offline push), the status routes, 2005 replies |
//! | `IM_STATUS_SUBSCRIPTIONS` | escaped userID | the IDs whose status the user follows | `/user/subscribe_users_status` | `/user/get_subscribe_users_status` |
//!
//! # Core NATS subjects (not stored)
//!
//! Built by [`subject::live`] and [`subject::fanout`]; delivery is best effort and seq sync
//! covers what it misses.
//!
//! | subject | carries | published by | subscribed by |
//! |---|---|---|---|
//! | `im.fanout.<conversationID>` | one message of the conversation to push (2001) to many users: a `Fanout` protobuf (the recipients, at most 1,000 a message, and the `PushMessages` payload), headers `Im-Operation`, `Im-Client-Msg-Id`, `Im-Sender` | the push service (stored messages, `push.fanout: conversation`, the default) | every gateway, with one subscription to `im.fanout.*` |
//! | `im.deliver.<userID>` | one message to push (2001): the `PushMessages` protobuf, headers `Im-Operation`, `Im-Client-Msg-Id`, `Im-Sender` | the push service (stored messages, under `push.fanout: per_user`); the request that sent an online-only message | every gateway, with one subscription to `im.deliver.*` (`gateway.deliveries: shared`); or each gateway holding a connection of the user (`per_user`) |
//! | `im.session.<userID>` | session control as JSON: `connected` (a new connection, for the multi-login policy), `force_logout` | gateways; `/auth/force_logout` | each gateway holding a connection of the user |
//! | `im.presence.<userID>` | the user's online platforms as a JSON array, when they change | gateways | gateways with connections that subscribed to the user's status (2005) |
//!
//! # Headers on every event
//!
//! | header | value |
//! |---|---|
//! | `Im-Event` | the event kind, e.g. `msg.sent` |
//! | `Im-Event-Version` | the schema version of that kind |
//! | `Im-Seq` | timeline events: the conversation seq |
//! | `Im-Actor` | the user who caused it |
//! | `Im-Operation` | the OpenIM operationID of the request that caused it, when there was one |
//! | `Nats-Msg-Id` | `<escaped conversationID>:<dedup key>` (OpenIM's clientMsgID) |
//! | `traceparent`, `tracestate` | W3C trace context of the command that wrote it |

pub mod append;
pub mod consume;
pub mod definitions;
pub mod escape;
pub mod headers;
pub mod kv;
pub mod record;
pub mod subject;

pub use append::{Actor, AppendError, AppendStats, Appended, EventLog, Expect, TimelineAppend};
pub use record::RecordedEvent;
pub use subject::Subject;
