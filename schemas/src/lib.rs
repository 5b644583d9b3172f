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
}
