//! jetim's data shapes, with no dependency on any other jetim crate.
//!
//! - [`openim`]: the OpenIM v3 wire types (protobuf), generated at build time from
//!   `schemas/proto/openim/*.proto`. Field names and numbers are the wire contract with
//!   OpenIM's client SDKs (see `shared/reference/protobuf.md`).
//! - [`event`]: jetim's own event envelope. Events are stored in JetStream as JSON so that
//!   `nats stream view` shows readable records; the kind and version also travel in headers.
//!
//! - [`events`]: the event kinds (`user.registered`, …); every kind is versioned and every
//!   version ever written stays readable.

pub mod event;
pub mod events;

/// OpenIM v3 protobuf packages.
#[allow(missing_docs, clippy::all, unreachable_pub)]
pub mod openim {
    /// `openim.sdkws`: transport, entities and notification tips.
    pub mod sdkws {
        include!(concat!(env!("OUT_DIR"), "/openim.sdkws.rs"));
    }
    /// `openim.msg`: send, pull and seq requests.
    pub mod msg {
        include!(concat!(env!("OUT_DIR"), "/openim.msg.rs"));
    }
    /// `openim.push`.
    pub mod push {
        include!(concat!(env!("OUT_DIR"), "/openim.push.rs"));
    }
    /// `openim.conversation`.
    pub mod conversation {
        include!(concat!(env!("OUT_DIR"), "/openim.conversation.rs"));
    }
    /// `openim.relation`.
    pub mod relation {
        include!(concat!(env!("OUT_DIR"), "/openim.relation.rs"));
    }
    /// `openim.jssdk`: the protobuf bodies of the `/jssdk/*` routes.
    pub mod jssdk {
        include!(concat!(env!("OUT_DIR"), "/openim.jssdk.rs"));
    }
    /// `openim.protobuf`: wrapper values that JSON transports write bare.
    pub mod protobuf {
        include!(concat!(env!("OUT_DIR"), "/openim.protobuf.rs"));
    }
}

/// Encodes a reply made of the two maps of pulled messages, `msgs` (field 1) and
/// `notificationMsgs` (field 2), as both `PullMessageBySeqsResp` and `GetSeqMessageResp` are,
/// the way Go's protobuf does: every map entry carries its value, even an empty `PullMsgs`.
/// prost leaves an empty value out of its entry, and the JS SDK's decoder then reads the
/// conversation as absent and fails on it (say, asking for a seq outside one's window).
pub fn encode_pulled_maps(
    msgs: &std::collections::BTreeMap<String, openim::sdkws::PullMsgs>,
    notification_msgs: &std::collections::BTreeMap<String, openim::sdkws::PullMsgs>,
) -> Vec<u8> {
    use prost::encoding::{WireType, encode_key, encode_varint, message, string};
    let mut buffer = Vec::new();
    for (field, map) in [(1, msgs), (2, notification_msgs)] {
        for (key, value) in map {
            let length = string::encoded_len(1, key) + message::encoded_len(2, value);
            encode_key(field, WireType::LengthDelimited, &mut buffer);
            encode_varint(length as u64, &mut buffer);
            string::encode(1, key, &mut buffer);
            message::encode(2, value, &mut buffer);
        }
    }
    buffer
}

#[cfg(test)]
mod tests {
    use super::openim::{msg, sdkws};
    use prost::Message;

    #[test]
    fn conversation_seqs_uses_field_numbers_two_and_three() {
        let seqs = msg::ConversationSeqs {
            conversation_id: "si_a_b".into(),
            seqs: vec![1, 2],
        };
        let bytes = seqs.encode_to_vec();
        // field 2, wire type 2 (length-delimited) = 0x12; field 3 packed = 0x1a
        assert_eq!(bytes[0], 0x12);
        assert_eq!(bytes[8], 0x1a);
        assert_eq!(
            msg::ConversationSeqs::decode(bytes.as_slice()).unwrap(),
            seqs
        );
    }

    #[test]
    fn msg_data_round_trips_with_options_map() {
        let mut data = sdkws::MsgData {
            send_id: "alice".into(),
            recv_id: "bob".into(),
            client_msg_id: "c1".into(),
            session_type: 1,
            content_type: 101,
            content: br#"{"content":"hi"}"#.to_vec(),
            seq: 7,
            ..Default::default()
        };
        data.options.insert("history".into(), false);
        let decoded = sdkws::MsgData::decode(data.encode_to_vec().as_slice()).unwrap();
        assert_eq!(decoded, data);
    }

    #[test]
    fn unknown_fields_such_as_the_js_only_ones_are_skipped() {
        // MsgData{sendID:"a"} followed by field 99 (varint 1), which no peer defines.
        let bytes = [0x0a, 0x01, b'a', 0x98, 0x06, 0x01];
        let decoded = sdkws::MsgData::decode(bytes.as_slice()).unwrap();
        assert_eq!(decoded.send_id, "a");
    }

    #[test]
    fn pulled_maps_keep_empty_values_and_decode_as_prost_encodes_them() {
        let mut msgs = std::collections::BTreeMap::new();
        msgs.insert("si_a_b".to_owned(), sdkws::PullMsgs::default());
        let mut notifications = std::collections::BTreeMap::new();
        notifications.insert(
            "n_a_b".to_owned(),
            sdkws::PullMsgs {
                is_end: true,
                end_seq: 3,
                ..sdkws::PullMsgs::default()
            },
        );
        let bytes = super::encode_pulled_maps(&msgs, &notifications);
        // Entry 1: key "si_a_b" (8 bytes with tag and length), then value field 2, empty.
        assert_eq!(&bytes[..12], b"\x0a\x0a\x0a\x06si_a_b\x12\x00");
        let decoded = msg::GetSeqMessageResp::decode(bytes.as_slice()).unwrap();
        assert_eq!(decoded.msgs, msgs);
        assert_eq!(decoded.notification_msgs, notifications);
        let prost_bytes = msg::GetSeqMessageResp {
            msgs: msgs.clone().into_iter().collect(),
            notification_msgs: notifications.clone().into_iter().collect(),
        }
        .encode_to_vec();
        assert_eq!(
            prost_bytes.len() + 2,
            bytes.len(),
            "prost drops the empty value"
        );
    }
}
