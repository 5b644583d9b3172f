//! `/msg/*`: sending, max seqs, pulling by seq, server time.

use std::collections::BTreeMap;

use axum::extract::State;
use base64::Engine as _;
use jetim_messaging::Rejection;
use jetim_messaging::options;
use jetim_messaging::service::{self, new_message_id};
use jetim_messaging::sync;
use jetim_schemas::openim::sdkws::{MsgData, OfflinePushInfo, PullMessageBySeqsReq, PullMsgs};
use serde::{Deserialize, Serialize};

use super::args::check_user_id;
use super::user::{now_millis, read_failed};
use crate::ApiState;
use crate::openim::{ApiError, Authed, Code, Reply, null_if_empty};

/// Maps a domain refusal to its OpenIM code.
pub fn rejected(rejection: Rejection) -> ApiError {
    ApiError::new(rejection.code(), rejection.to_string())
}

/// `offlinePushInfo` as JSON carries it.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct OfflinePushJson {
    title: String,
    desc: String,
    ex: String,
    #[serde(rename = "iOSPushSound")]
    ios_push_sound: String,
    #[serde(rename = "iOSBadgeCount")]
    ios_badge_count: bool,
    #[serde(rename = "signalInfo")]
    signal_info: String,
}

/// `/msg/send_msg` request (OpenIM's `SendMsgReq`): content is a JSON object.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct SendMsgRequest {
    #[serde(rename = "sendID")]
    send_id: String,
    #[serde(rename = "recvID")]
    recv_id: String,
    #[serde(rename = "groupID")]
    group_id: String,
    #[serde(rename = "senderNickname")]
    sender_nickname: String,
    #[serde(rename = "senderFaceURL")]
    sender_face_url: String,
    #[serde(rename = "senderPlatformID")]
    sender_platform_id: i32,
    content: Option<serde_json::Map<String, serde_json::Value>>,
    #[serde(rename = "contentType")]
    content_type: i32,
    #[serde(rename = "sessionType")]
    session_type: i32,
    #[serde(rename = "isOnlineOnly")]
    is_online_only: bool,
    #[serde(rename = "notOfflinePush")]
    not_offline_push: bool,
    #[serde(rename = "sendTime")]
    send_time: i64,
    #[serde(rename = "offlinePushInfo")]
    offline_push_info: Option<OfflinePushJson>,
    ex: String,
    /// `batch_send_msg` only: send to every registered user.
    #[serde(rename = "isSendAll")]
    is_send_all: bool,
    /// `batch_send_msg` only: the receivers.
    #[serde(rename = "recvIDs")]
    recv_ids: Vec<String>,
}

impl From<OfflinePushJson> for OfflinePushInfo {
    fn from(push: OfflinePushJson) -> Self {
        Self {
            title: push.title,
            desc: push.desc,
            ex: push.ex,
            i_os_push_sound: push.ios_push_sound,
            i_os_badge_count: push.ios_badge_count,
            signal_info: push.signal_info,
        }
    }
}

/// Sends `message` for `caller` and answers as `/msg/send_msg` does.
async fn send_and_reply(
    state: &ApiState,
    caller: &crate::openim::Caller,
    operation_id: &str,
    message: &MsgData,
) -> Result<Reply<SendMsgReply>, ApiError> {
    let sent = service::send(
        &state.log,
        &state.db,
        &state.send_facts,
        message,
        service::Caller {
            user_id: &caller.user_id,
            is_admin: caller.is_admin,
            friend_verify: state.messaging.friend_verify,
        },
        operation_id,
    )
    .await
    .map_err(|failure| ApiError::internal("sending", &failure))?
    .map_err(rejected)?;
    Ok(Reply(SendMsgReply {
        server_msg_id: sent.server_msg_id,
        client_msg_id: sent.client_msg_id,
        send_time: sent.send_time,
    }))
}

/// `/msg/send_msg` reply.
#[derive(Debug, Serialize)]
pub struct SendMsgReply {
    #[serde(rename = "serverMsgID")]
    server_msg_id: String,
    #[serde(rename = "clientMsgID")]
    client_msg_id: String,
    #[serde(rename = "sendTime")]
    send_time: i64,
}

const REST_CONTENT_TYPES: &[i32] = &[101, 102, 103, 104, 105, 106, 110, 114, 118, 1400];

/// Builds the message an admin's REST send describes, for one receiver.
fn rest_message(body: &SendMsgRequest, recv_id: &str) -> Result<MsgData, ApiError> {
    if !REST_CONTENT_TYPES.contains(&body.content_type) {
        return Err(ApiError::args(format!(
            "contentType {} cannot be sent through /msg/send_msg",
            body.content_type
        )));
    }
    let content = body
        .content
        .clone()
        .ok_or_else(|| ApiError::args("content must be a JSON object"))?;
    let at_user_ids: Vec<String> = if body.content_type == 106 {
        content
            .get("atUserList")
            .and_then(serde_json::Value::as_array)
            .map(|list| {
                list.iter()
                    .filter_map(|id| id.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    } else {
        Vec::new()
    };
    let (content_bytes, session_type) = if body.content_type == 1400 {
        // Official-account notifications: the content is wrapped as {"detail": "<JSON>"}.
        let detail = serde_json::Value::Object(content).to_string();
        (
            serde_json::json!({ "detail": detail })
                .to_string()
                .into_bytes(),
            4,
        )
    } else {
        (
            serde_json::Value::Object(content).to_string().into_bytes(),
            body.session_type,
        )
    };
    let mut message_options = BTreeMap::new();
    if body.is_online_only {
        for key in [
            options::HISTORY,
            options::PERSISTENT,
            options::SENDER_SYNC,
            options::CONVERSATION_UPDATE,
        ] {
            message_options.insert(key.to_owned(), false);
        }
    }
    if body.not_offline_push {
        message_options.insert(options::OFFLINE_PUSH.to_owned(), false);
    }
    Ok(MsgData {
        send_id: body.send_id.clone(),
        recv_id: recv_id.to_owned(),
        group_id: body.group_id.clone(),
        client_msg_id: new_message_id(),
        sender_platform_id: body.sender_platform_id,
        sender_nickname: body.sender_nickname.clone(),
        sender_face_url: body.sender_face_url.clone(),
        session_type,
        msg_from: 200,
        content_type: body.content_type,
        content: content_bytes,
        send_time: body.send_time,
        create_time: now_millis(),
        options: message_options,
        offline_push_info: body.offline_push_info.clone().map(OfflinePushInfo::from),
        at_user_id_list: at_user_ids,
        ex: body.ex.clone(),
        ..MsgData::default()
    })
}

/// Sends a message as any user (admin only), through the same checks as the user's own send.
pub async fn send_msg(
    State(state): State<ApiState>,
    request: Authed<SendMsgRequest>,
) -> Result<Reply<SendMsgReply>, ApiError> {
    request.caller.require_admin()?;
    let message = rest_message(&request.body, &request.body.recv_id)?;
    let result = send_and_reply(&state, &request.caller, &request.operation_id, &message).await;
    let status = if result.is_ok() {
        SEND_SUCCEEDED
    } else {
        SEND_FAILED
    };
    let key = send_status_key(&request.caller.user_id, &request.operation_id);
    if let Err(error) = state.send_status.put(&key, &status).await {
        // The send itself is done (or refused); only its later check is affected.
        tracing::warn!(%error, "send status not recorded");
    }
    result
}

/// OpenIM's send status: no send with this operationID is known.
const SEND_UNKNOWN: i32 = 0;
/// OpenIM's send status: sent.
const SEND_SUCCEEDED: i32 = 2;
/// OpenIM's send status: failed.
const SEND_FAILED: i32 = 3;

fn send_status_key(user_id: &str, operation_id: &str) -> String {
    // User IDs hold no ':', so the pair is unambiguous.
    format!("{user_id}:{operation_id}")
}

/// `/msg/check_msg_is_send_success` reply.
#[derive(Debug, Serialize)]
pub struct SendStatusReply {
    status: i32,
}

/// The result of the caller's `/msg/send_msg` with the same operationID in the last day:
/// 2 sent, 3 failed, 0 unknown.
pub async fn check_msg_is_send_success(
    State(state): State<ApiState>,
    request: Authed<EmptyRequest>,
) -> Result<Reply<SendStatusReply>, ApiError> {
    let key = send_status_key(&request.caller.user_id, &request.operation_id);
    let status = state
        .send_status
        .get(&key)
        .await
        .map_err(|error| ApiError::internal("reading the send status", &error))?
        .map_or(SEND_UNKNOWN, |(status, _)| status);
    Ok(Reply(SendStatusReply { status }))
}

/// One receiver's result.
#[derive(Debug, Serialize)]
pub struct BatchResult {
    #[serde(rename = "serverMsgID")]
    server_msg_id: String,
    #[serde(rename = "clientMsgID")]
    client_msg_id: String,
    #[serde(rename = "sendTime")]
    send_time: i64,
    #[serde(rename = "recvID")]
    recv_id: String,
    /// No webhook changes messages in jetim, so this is always null.
    modify: Option<()>,
}

/// `/msg/batch_send_msg` reply.
#[derive(Debug, Serialize)]
pub struct BatchSendReply {
    #[serde(serialize_with = "null_if_empty")]
    results: Vec<BatchResult>,
    #[serde(rename = "failedUserIDs", serialize_with = "null_if_empty")]
    failed_user_ids: Vec<String>,
}

/// Sends one message to each receiver (or, with `isSendAll`, to every registered user but
/// the sender), each through the ordinary send; receivers it could not reach are listed.
pub async fn batch_send_msg(
    State(state): State<ApiState>,
    request: Authed<SendMsgRequest>,
) -> Result<Reply<BatchSendReply>, ApiError> {
    request.caller.require_admin()?;
    let body = request.body;
    let receivers: Vec<String> = if body.is_send_all {
        let mut everyone = Vec::new();
        let mut offset = 0;
        loop {
            let (_, page) = jetim_readmodel::users::page(
                &state.db,
                &jetim_readmodel::users::UserFilter::default(),
                offset,
                1000,
            )
            .await
            .map_err(|error| read_failed(&error))?;
            let fetched = page.len();
            everyone.extend(
                page.into_iter()
                    .map(|user| user.user_id)
                    .filter(|id| *id != body.send_id),
            );
            if fetched < 1000 {
                break;
            }
            offset += 1000;
        }
        everyone
    } else {
        super::args::check_id_list("recvIDs", &body.recv_ids)?;
        body.recv_ids.clone()
    };
    // The message must make sense at all before anyone gets it.
    rest_message(&body, "")?;
    let mut reply = BatchSendReply {
        results: Vec::new(),
        failed_user_ids: Vec::new(),
    };
    for recv_id in receivers {
        let message = rest_message(&body, &recv_id)?;
        match service::send(
            &state.log,
            &state.db,
            &state.send_facts,
            &message,
            service::Caller {
                user_id: &request.caller.user_id,
                is_admin: request.caller.is_admin,
                friend_verify: state.messaging.friend_verify,
            },
            &request.operation_id,
        )
        .await
        {
            Ok(Ok(sent)) => reply.results.push(BatchResult {
                server_msg_id: sent.server_msg_id,
                client_msg_id: sent.client_msg_id,
                send_time: sent.send_time,
                recv_id,
                modify: None,
            }),
            Ok(Err(rejection)) => {
                tracing::debug!(%recv_id, %rejection, "batch send refused for one receiver");
                reply.failed_user_ids.push(recv_id);
            }
            Err(failure) => {
                tracing::warn!(%recv_id, %failure, "batch send failed for one receiver");
                reply.failed_user_ids.push(recv_id);
            }
        }
    }
    Ok(Reply(reply))
}

/// A request naming only a user.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct UserRequest {
    #[serde(rename = "userID")]
    user_id: String,
}

/// `/msg/newest_seq` reply; Go leaves empty maps out, and never fills `minSeqs`.
#[derive(Debug, Serialize)]
pub struct NewestSeqReply {
    #[serde(rename = "maxSeqs", skip_serializing_if = "BTreeMap::is_empty")]
    max_seqs: BTreeMap<String, i64>,
}

/// The max seq of each of the user's conversations (only the user, or an admin).
pub async fn newest_seq(
    State(state): State<ApiState>,
    request: Authed<UserRequest>,
) -> Result<Reply<NewestSeqReply>, ApiError> {
    check_user_id("userID", &request.body.user_id)?;
    request
        .caller
        .require_self_or_admin(&request.body.user_id)?;
    let newest = sync::newest_seqs(&state.db, &request.body.user_id)
        .await
        .map_err(sync_failed)?;
    Ok(Reply(NewestSeqReply {
        max_seqs: newest.max_seqs,
    }))
}

/// `MsgData` as Go's JSON writes it: every field, content in base64, nil lists as `null`.
#[derive(Debug, Serialize)]
pub struct MsgJson {
    #[serde(rename = "sendID")]
    send_id: String,
    #[serde(rename = "recvID")]
    recv_id: String,
    #[serde(rename = "groupID")]
    group_id: String,
    #[serde(rename = "clientMsgID")]
    client_msg_id: String,
    #[serde(rename = "serverMsgID")]
    server_msg_id: String,
    #[serde(rename = "senderPlatformID")]
    sender_platform_id: i32,
    #[serde(rename = "senderNickname")]
    sender_nickname: String,
    #[serde(rename = "senderFaceURL")]
    sender_face_url: String,
    #[serde(rename = "sessionType")]
    session_type: i32,
    #[serde(rename = "msgFrom")]
    msg_from: i32,
    #[serde(rename = "contentType")]
    content_type: i32,
    content: String,
    seq: i64,
    #[serde(rename = "sendTime")]
    send_time: i64,
    #[serde(rename = "createTime")]
    create_time: i64,
    status: i32,
    #[serde(rename = "isRead")]
    is_read: bool,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    options: BTreeMap<String, bool>,
    #[serde(rename = "offlinePushInfo")]
    offline_push_info: Option<OfflinePushJson>,
    #[serde(rename = "atUserIDList", serialize_with = "null_if_empty")]
    at_user_id_list: Vec<String>,
    #[serde(rename = "attachedInfo")]
    attached_info: String,
    ex: String,
}

impl From<MsgData> for MsgJson {
    fn from(message: MsgData) -> Self {
        Self {
            send_id: message.send_id,
            recv_id: message.recv_id,
            group_id: message.group_id,
            client_msg_id: message.client_msg_id,
            server_msg_id: message.server_msg_id,
            sender_platform_id: message.sender_platform_id,
            sender_nickname: message.sender_nickname,
            sender_face_url: message.sender_face_url,
            session_type: message.session_type,
            msg_from: message.msg_from,
            content_type: message.content_type,
            content: base64::engine::general_purpose::STANDARD.encode(&message.content),
            seq: message.seq,
            send_time: message.send_time,
            create_time: message.create_time,
            status: message.status,
            is_read: message.is_read,
            options: message.options.into_iter().collect(),
            offline_push_info: message.offline_push_info.map(|push| OfflinePushJson {
                title: push.title,
                desc: push.desc,
                ex: push.ex,
                ios_push_sound: push.i_os_push_sound,
                ios_badge_count: push.i_os_badge_count,
                signal_info: push.signal_info,
            }),
            at_user_id_list: message.at_user_id_list,
            attached_info: message.attached_info,
            ex: message.ex,
        }
    }
}

/// One asked range.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct SeqRange {
    #[serde(rename = "conversationID")]
    conversation_id: String,
    begin: i64,
    end: i64,
    num: i64,
}

/// `/msg/pull_msg_by_seq` request.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct PullRequest {
    #[serde(rename = "userID")]
    user_id: String,
    #[serde(rename = "seqRanges")]
    seq_ranges: Vec<SeqRange>,
    order: i32,
}

/// One conversation's pulled messages.
#[derive(Debug, Serialize)]
pub struct PulledMsgs {
    #[serde(rename = "Msgs", serialize_with = "null_if_empty")]
    msgs: Vec<MsgJson>,
    #[serde(rename = "isEnd")]
    is_end: bool,
    #[serde(rename = "endSeq")]
    end_seq: i64,
}

/// `/msg/pull_msg_by_seq` reply.
#[derive(Debug, Serialize)]
pub struct PullReply {
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    msgs: BTreeMap<String, PulledMsgs>,
    #[serde(
        rename = "notificationMsgs",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    notification_msgs: BTreeMap<String, PulledMsgs>,
}

/// Messages by seq range, as WS 1002: per range, only conversations the user has; the range
/// clamped to what exists; the newest `num` seqs of it; a `{seq, status: 4}` placeholder for a
/// seq without a message.
pub async fn pull_msg_by_seq(
    State(state): State<ApiState>,
    request: Authed<PullRequest>,
) -> Result<Reply<PullReply>, ApiError> {
    let body = request.body;
    check_user_id("userID", &body.user_id)?;
    request.caller.require_self_or_admin(&body.user_id)?;
    let asked = PullMessageBySeqsReq {
        user_id: body.user_id.clone(),
        seq_ranges: body
            .seq_ranges
            .into_iter()
            .map(|range| jetim_schemas::openim::sdkws::SeqRange {
                conversation_id: range.conversation_id,
                begin: range.begin,
                end: range.end,
                num: range.num,
            })
            .collect(),
        order: body.order,
    };
    let pulled = sync::pull_by_ranges(&state.db, &state.log, &body.user_id, &asked)
        .await
        .map_err(sync_failed)?;
    let render = |all: BTreeMap<String, PullMsgs>| -> BTreeMap<String, PulledMsgs> {
        all.into_iter()
            .map(|(conversation_id, pulled)| {
                (
                    conversation_id,
                    PulledMsgs {
                        msgs: pulled.msgs.into_iter().map(MsgJson::from).collect(),
                        is_end: pulled.is_end,
                        end_seq: pulled.end_seq,
                    },
                )
            })
            .collect()
    };
    Ok(Reply(PullReply {
        msgs: render(pulled.msgs),
        notification_msgs: render(pulled.notification_msgs),
    }))
}

/// Maps a seq-sync failure to its OpenIM code.
pub fn sync_failed(error: sync::SyncError) -> ApiError {
    match error {
        sync::SyncError::Rejected(rejection) => rejected(rejection),
        sync::SyncError::ReadModel(error) => read_failed(&error),
    }
}

/// `/msg/get_server_time` reply.
#[derive(Debug, Serialize)]
pub struct ServerTimeReply {
    #[serde(rename = "serverTime")]
    server_time: i64,
}

/// A request with no fields (`{}`).
#[derive(Debug, Default, Deserialize)]
pub struct EmptyRequest {}

/// The server's clock, Unix milliseconds.
pub async fn get_server_time(_request: Authed<EmptyRequest>) -> Reply<ServerTimeReply> {
    Reply(ServerTimeReply {
        server_time: now_millis(),
    })
}

/// `/msg/send_business_notification` request.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct BusinessNotificationRequest {
    key: String,
    data: String,
    #[serde(rename = "sendUserID")]
    send_user_id: String,
    #[serde(rename = "recvUserID")]
    recv_user_id: String,
    #[serde(rename = "recvGroupID")]
    recv_group_id: String,
    /// Also store a copy in the chat conversation, counted unread.
    #[serde(rename = "sendMsg")]
    send_msg: bool,
    /// 1 (default): pushed only; 2: stored in the notification conversation too.
    #[serde(rename = "reliabilityLevel")]
    reliability_level: Option<i32>,
}

/// Sends an app-defined notification (contentType 2001, detail `{"key","data"}`) from one
/// user to another (admin only). As OpenIM's notifications: it goes to the pair's `n_`
/// conversation, stored there only at reliability level 2; with `sendMsg` a copy is also
/// stored in their chat, counted unread.
pub async fn send_business_notification(
    State(state): State<ApiState>,
    request: Authed<BusinessNotificationRequest>,
) -> Result<Reply<SendMsgReply>, ApiError> {
    request.caller.require_admin()?;
    let body = request.body;
    match (body.recv_user_id.is_empty(), body.recv_group_id.is_empty()) {
        (false, false) | (true, true) => {
            return Err(ApiError::args(
                "give exactly one of recvUserID and recvGroupID",
            ));
        }
        (true, false) => {
            return Err(ApiError::new(
                Code::GroupIdNotFound,
                format!("group {:?} does not exist", body.recv_group_id),
            ));
        }
        (false, true) => {}
    }
    if body.key.is_empty() {
        return Err(ApiError::args("key is empty"));
    }
    let level = body.reliability_level.unwrap_or(1);
    if !(1..=2).contains(&level) {
        return Err(ApiError::args(format!(
            "reliabilityLevel {level} is not 1 or 2"
        )));
    }
    let detail = serde_json::json!({ "key": body.key, "data": body.data }).to_string();
    let content = serde_json::json!({ "detail": detail })
        .to_string()
        .into_bytes();
    let stored = level == 2;
    let notification_options: BTreeMap<String, bool> = [
        (options::IS_NOT_NOTIFICATION, false),
        (options::SENDER_SYNC, true),
        (options::HISTORY, stored),
        (options::PERSISTENT, stored),
        (options::UNREAD_COUNT, body.send_msg),
        ("isSendMsg", body.send_msg),
        (options::OFFLINE_PUSH, false),
        (options::CONVERSATION_UPDATE, false),
        (options::SENDER_CONVERSATION_UPDATE, false),
    ]
    .into_iter()
    .map(|(key, value)| (key.to_owned(), value))
    .collect();
    let message = |options: BTreeMap<String, bool>| MsgData {
        send_id: body.send_user_id.clone(),
        recv_id: body.recv_user_id.clone(),
        client_msg_id: new_message_id(),
        session_type: 1,
        msg_from: 200,
        content_type: 2001,
        content: content.clone(),
        create_time: now_millis(),
        options,
        ..MsgData::default()
    };
    let send = |data: MsgData| {
        let state = state.clone();
        let caller = request.caller.clone();
        let operation_id = request.operation_id.clone();
        async move {
            service::send(
                &state.log,
                &state.db,
                &state.send_facts,
                &data,
                service::Caller {
                    user_id: &caller.user_id,
                    is_admin: caller.is_admin,
                    friend_verify: state.messaging.friend_verify,
                },
                &operation_id,
            )
            .await
            .map_err(|failure| ApiError::internal("sending", &failure))?
            .map_err(rejected)
        }
    };
    let sent = send(message(notification_options)).await?;
    if body.send_msg {
        // The copy in the chat: stored, counted unread, updating the conversation.
        let copy_options = [(options::UNREAD_COUNT, true), (options::OFFLINE_PUSH, true)]
            .into_iter()
            .map(|(key, value)| (key.to_owned(), value))
            .collect();
        send(message(copy_options)).await?;
    }
    Ok(Reply(SendMsgReply {
        server_msg_id: sent.server_msg_id,
        client_msg_id: sent.client_msg_id,
        send_time: sent.send_time,
    }))
}

/// The target of `/msg/send_simple_msg`, from its `key` query parameter (base64 JSON).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct SimpleKey {
    #[serde(rename = "sendID")]
    send_id: String,
    #[serde(rename = "recvID")]
    recv_id: String,
    #[serde(rename = "groupID")]
    group_id: String,
}

/// `/msg/send_simple_msg` query.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct SimpleQuery {
    key: String,
}

/// `/msg/send_simple_msg` body.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct SimpleRequest {
    #[serde(rename = "sendID")]
    send_id: String,
    content: String,
    #[serde(rename = "offlinePushInfo")]
    offline_push_info: Option<OfflinePushJson>,
    ex: String,
}

fn simple_key(key: &str) -> Result<SimpleKey, ApiError> {
    let engines = [
        &base64::engine::general_purpose::STANDARD,
        &base64::engine::general_purpose::URL_SAFE,
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        &base64::engine::general_purpose::STANDARD_NO_PAD,
    ];
    let bytes = engines
        .iter()
        .find_map(|engine| engine.decode(key).ok())
        .ok_or_else(|| ApiError::args("key is not base64"))?;
    crate::openim::json::decode(&bytes)
        .map_err(|error| ApiError::args(format!("key is not the expected JSON: {error}")))
}

/// Sends a Markdown text (contentType 118) where `key` says: into its group from the body's
/// sender, or else as a reply from the key's `recvID` to its `sendID`. The sender must be the
/// caller (or the caller an admin).
pub async fn send_simple_msg(
    State(state): State<ApiState>,
    query: Result<axum::extract::Query<SimpleQuery>, axum::extract::rejection::QueryRejection>,
    request: Authed<SimpleRequest>,
) -> Result<Reply<SendMsgReply>, ApiError> {
    let axum::extract::Query(query) =
        query.map_err(|rejection| ApiError::args(format!("bad query: {rejection}")))?;
    let target = simple_key(&query.key)?;
    let body = request.body;
    let (send_id, recv_id, group_id, session_type) = if target.group_id.is_empty() {
        (target.recv_id, target.send_id, String::new(), 1)
    } else {
        (body.send_id.clone(), String::new(), target.group_id, 3)
    };
    request.caller.require_self_or_admin(&send_id)?;
    let message = MsgData {
        send_id,
        recv_id,
        group_id,
        client_msg_id: new_message_id(),
        session_type,
        msg_from: 100,
        content_type: 118,
        content: serde_json::json!({ "content": body.content })
            .to_string()
            .into_bytes(),
        create_time: now_millis(),
        offline_push_info: body.offline_push_info.map(OfflinePushInfo::from),
        ex: body.ex,
        ..MsgData::default()
    };
    send_and_reply(&state, &request.caller, &request.operation_id, &message).await
}
