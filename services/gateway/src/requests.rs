//! The requests a connection serves (`shared/reference/gateway.md` §5), each answered by the
//! same messaging code as its REST twin. Every request gets a reply, errors included: the JS
//! SDK has no request timeout, so an unanswered request hangs its caller.

use std::sync::Arc;

use jetim_common::errcode::Code;
use jetim_messaging::service;
use jetim_messaging::sync::{self, SyncError};
use jetim_schemas::openim::msg::{
    GetConversationsHasReadAndMaxSeqReq, GetLastMessageReq, GetSeqMessageReq, SendMsgResp,
};
use jetim_schemas::openim::push::{DelUserPushTokenReq, DelUserPushTokenResp};
use jetim_schemas::openim::sdkws::{
    GetMaxSeqReq, MsgData, PullMessageBySeqsReq, SetAppBackgroundStatusReq, SubUserOnlineStatus,
};
use prost::Message as _;

use crate::Shared;
use crate::connection::Connection;
use crate::envelope::{Reply, Request};

/// WS 1001: max seqs.
pub const GET_NEWEST_SEQ: i32 = 1001;
/// WS 1002: pull by seq ranges.
pub const PULL_BY_RANGE: i32 = 1002;
/// WS 1003: send a message.
pub const SEND_MSG: i32 = 1003;
/// WS 1004: signalling, never served.
pub const SEND_SIGNAL_MSG: i32 = 1004;
/// WS 1005: pull by seqs.
pub const PULL_BY_SEQS: i32 = 1005;
/// WS 1006: read and max seqs.
pub const GET_CONV_MAX_READ_SEQ: i32 = 1006;
/// WS 1007: last messages.
pub const PULL_CONV_LAST_MESSAGE: i32 = 1007;

/// WS 2003: log out; the connection closes after the reply.
pub const LOGOUT: i32 = 2003;
/// WS 2004: the app went to or came back from the background.
pub const SET_BACKGROUND_STATUS: i32 = 2004;
/// WS 2005: subscribe to (and unsubscribe from) users' online status.
pub const SUB_USER_ONLINE_STATUS: i32 = crate::hub::SUB_USER_ONLINE_STATUS;

/// The most users one 2005 request may name.
pub const MAX_STATUS_USERS: usize = 1000;
/// The most users one connection may follow.
pub const MAX_WATCHED_PER_CONNECTION: usize = 10_000;

/// What happens to the connection after a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum After {
    /// It stays open.
    Continue,
    /// It closes once the reply is written (2003).
    Close,
}

/// A failed request: its code and what was wrong.
struct Failure {
    code: Code,
    detail: String,
}

impl Failure {
    fn new(code: Code, detail: impl Into<String>) -> Self {
        Self {
            code,
            detail: detail.into(),
        }
    }
}

impl From<SyncError> for Failure {
    fn from(error: SyncError) -> Self {
        match error {
            SyncError::Rejected(rejection) => Self::new(rejection.code(), rejection.to_string()),
            SyncError::ReadModel(error) => {
                tracing::error!(%error, "a gateway read failed");
                Self::new(Code::ServerInternal, error.to_string())
            }
        }
    }
}

fn decode<M: prost::Message + Default>(data: &[u8]) -> Result<M, Failure> {
    M::decode(data)
        .map_err(|error| Failure::new(Code::Args, format!("data is not the request: {error}")))
}

/// A request's `userID` must be the connection's user (an empty one means the caller).
fn check_user(asked: &str, user_id: &str) -> Result<(), Failure> {
    if asked.is_empty() || asked == user_id {
        Ok(())
    } else {
        Err(Failure::new(
            Code::NoPermission,
            format!("userID {asked:?} is not the connection's user {user_id}"),
        ))
    }
}

/// Serves one request on `connection` and builds its reply.
pub async fn serve(
    shared: &Shared,
    connection: &Arc<Connection>,
    request: &Request,
) -> (Reply, After) {
    let result = answer(shared, connection, request).await;
    let (err_code, err_msg, data, after) = match result {
        Ok((data, after)) => (0, String::new(), data, after),
        Err(failure) => (
            failure.code.number(),
            format!("{}: {}", failure.code.name(), failure.detail),
            None,
            After::Continue,
        ),
    };
    let reply = Reply {
        req_identifier: request.req_identifier,
        msg_incr: request.msg_incr.clone(),
        operation_id: request.operation_id.clone(),
        err_code,
        err_msg,
        data,
    };
    (reply, after)
}

async fn answer(
    shared: &Shared,
    connection: &Arc<Connection>,
    request: &Request,
) -> Result<(Option<Vec<u8>>, After), Failure> {
    let user_id = connection.user_id.as_str();
    let data = match request.req_identifier {
        LOGOUT => {
            let asked: DelUserPushTokenReq = decode(&request.data)?;
            check_user(&asked.user_id, user_id)?;
            // jetim keeps no offline-push tokens yet, so there is none to remove.
            return Ok((Some(DelUserPushTokenResp {}.encode_to_vec()), After::Close));
        }
        SET_BACKGROUND_STATUS => {
            let asked: SetAppBackgroundStatusReq = decode(&request.data)?;
            check_user(&asked.user_id, user_id)?;
            connection.set_background(asked.is_background);
            return Ok((None, After::Continue));
        }
        SUB_USER_ONLINE_STATUS => {
            let asked: SubUserOnlineStatus = decode(&request.data)?;
            check_status_users(&asked.subscribe_user_id, "subscribeUserID")?;
            check_status_users(&asked.unsubscribe_user_id, "unsubscribeUserID")?;
            shared.hub.unwatch(connection, &asked.unsubscribe_user_id);
            let following = crate::lock(&connection.watching).len();
            if following + asked.subscribe_user_id.len() > MAX_WATCHED_PER_CONNECTION {
                return Err(Failure::new(
                    Code::Args,
                    format!("a connection follows at most {MAX_WATCHED_PER_CONNECTION} users"),
                ));
            }
            let tips = shared
                .hub
                .watch(connection, &asked.subscribe_user_id)
                .await
                .map_err(|error| Failure::new(Code::ServerInternal, error.to_string()))?;
            tips.encode_to_vec()
        }
        _ => answer_sync(shared, user_id, request).await?,
    };
    Ok((Some(data), After::Continue))
}

/// A 2005 user list: at most [`MAX_STATUS_USERS`] non-empty IDs.
fn check_status_users(user_ids: &[String], field: &str) -> Result<(), Failure> {
    if user_ids.len() > MAX_STATUS_USERS {
        return Err(Failure::new(
            Code::Args,
            format!(
                "{field} names {} users; at most {MAX_STATUS_USERS}",
                user_ids.len()
            ),
        ));
    }
    if user_ids.iter().any(String::is_empty) {
        return Err(Failure::new(
            Code::Args,
            format!("{field} holds an empty user ID"),
        ));
    }
    Ok(())
}

/// The requests the messaging code answers.
async fn answer_sync(
    shared: &Shared,
    user_id: &str,
    request: &Request,
) -> Result<Vec<u8>, Failure> {
    let state = &shared.state;
    let db = &state.db;
    match request.req_identifier {
        GET_NEWEST_SEQ => {
            let asked: GetMaxSeqReq = decode(&request.data)?;
            check_user(&asked.user_id, user_id)?;
            Ok(sync::newest_seqs(db, user_id).await?.encode_to_vec())
        }
        PULL_BY_RANGE => {
            let asked: PullMessageBySeqsReq = decode(&request.data)?;
            check_user(&asked.user_id, user_id)?;
            let pulled = sync::pull_by_ranges(db, &state.log, user_id, &asked).await?;
            Ok(jetim_schemas::encode_pulled_maps(
                &pulled.msgs,
                &pulled.notification_msgs,
            ))
        }
        SEND_MSG => {
            let message: MsgData = decode(&request.data)?;
            let sent = service::send(
                &state.log,
                db,
                &state.send_facts,
                &message,
                service::Caller {
                    user_id,
                    is_admin: false,
                    friend_verify: state.messaging.friend_verify,
                },
                &request.operation_id,
            )
            .await
            .map_err(|failure| Failure::new(Code::ServerInternal, failure.to_string()))?
            .map_err(|rejection| Failure::new(rejection.code(), rejection.to_string()))?;
            Ok(SendMsgResp {
                server_msg_id: sent.server_msg_id,
                client_msg_id: sent.client_msg_id,
                send_time: sent.send_time,
                modify: None,
            }
            .encode_to_vec())
        }
        PULL_BY_SEQS => {
            let asked: GetSeqMessageReq = decode(&request.data)?;
            check_user(&asked.user_id, user_id)?;
            let pulled = sync::pull_by_seqs(db, &state.log, user_id, &asked).await?;
            Ok(jetim_schemas::encode_pulled_maps(
                &pulled.msgs,
                &pulled.notification_msgs,
            ))
        }
        GET_CONV_MAX_READ_SEQ => {
            let asked: GetConversationsHasReadAndMaxSeqReq = decode(&request.data)?;
            check_user(&asked.user_id, user_id)?;
            Ok(
                sync::read_and_max_seqs(db, user_id, &asked.conversation_i_ds, asked.return_pinned)
                    .await?
                    .encode_to_vec(),
            )
        }
        PULL_CONV_LAST_MESSAGE => {
            let asked: GetLastMessageReq = decode(&request.data)?;
            check_user(&asked.user_id, user_id)?;
            Ok(sync::last_messages(db, user_id, &asked.conversation_i_ds)
                .await?
                .encode_to_vec())
        }
        SEND_SIGNAL_MSG => Err(Failure::new(
            Code::Args,
            "signalling (1004) is not served; OpenIM retired it",
        )),
        other => Err(Failure::new(
            Code::Args,
            format!("reqIdentifier {other} is not a request this gateway serves"),
        )),
    }
}
