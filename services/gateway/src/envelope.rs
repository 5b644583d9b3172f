//! The request and reply envelopes (`shared/reference/gateway.md` §4). `data` is always a
//! protobuf message. The JSON form (`sdkType=js`) carries it as standard base64; the gob form
//! (the Go SDK, [`crate::gob`]) as a byte slice. With compression on, every binary frame is
//! one gzip member, both ways.

use std::cell::RefCell;
use std::io::Read as _;

use base64::Engine as _;
use serde::{Deserialize, Serialize};

/// A client's request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct Request {
    /// What is asked (1001, 1003, ...).
    #[serde(rename = "reqIdentifier")]
    pub req_identifier: i32,
    /// Ignored: the connection is already authenticated.
    pub token: String,
    /// Must be the connection's user.
    #[serde(rename = "sendID")]
    pub send_id: String,
    /// The client's operationID, echoed back.
    #[serde(rename = "operationID")]
    pub operation_id: String,
    /// The client's correlation ID, echoed back.
    #[serde(rename = "msgIncr")]
    pub msg_incr: String,
    /// The protobuf request (base64 in JSON).
    #[serde(with = "base64_bytes")]
    pub data: Vec<u8>,
}

/// A reply to a request, or a push (empty `msgIncr`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Reply {
    /// The request's identifier, or the push's.
    #[serde(rename = "reqIdentifier")]
    pub req_identifier: i32,
    /// The request's correlation ID; empty for pushes.
    #[serde(rename = "msgIncr")]
    pub msg_incr: String,
    /// The request's operationID.
    #[serde(rename = "operationID")]
    pub operation_id: String,
    /// 0, or the OpenIM error code.
    #[serde(rename = "errCode")]
    pub err_code: i32,
    /// The error, empty on success.
    #[serde(rename = "errMsg")]
    pub err_msg: String,
    /// The protobuf reply; `None` for errors and empty replies (JSON `null`).
    #[serde(serialize_with = "base64_or_null")]
    pub data: Option<Vec<u8>>,
}

mod base64_bytes {
    use base64::Engine as _;
    use serde::{Deserialize as _, Deserializer};

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Vec<u8>, D::Error> {
        let text = Option::<String>::deserialize(deserializer)?.unwrap_or_default();
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(serde::de::Error::custom)
    }
}

fn base64_or_null<S: serde::Serializer>(
    data: &Option<Vec<u8>>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match data {
        Some(bytes) => {
            serializer.serialize_str(&base64::engine::general_purpose::STANDARD.encode(bytes))
        }
        None => serializer.serialize_none(),
    }
}

/// A frame that could not be read; the connection is closed with this reason.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadFrame(pub String);

/// Reads a binary frame in `envelope`: gunzip when the connection is compressed, then the
/// envelope.
pub fn decode(
    frame: &[u8],
    envelope: crate::handshake::Envelope,
    gzip: bool,
    max_bytes: usize,
) -> Result<Request, BadFrame> {
    match envelope {
        crate::handshake::Envelope::Json => decode_json(frame, gzip, max_bytes),
        crate::handshake::Envelope::Gob => {
            let plain = if gzip {
                gunzip(frame, max_bytes)?
            } else {
                frame.to_vec()
            };
            crate::gob::decode_request(&plain).map_err(|error| BadFrame(error.to_string()))
        }
    }
}

/// Writes a reply frame in `envelope`.
pub fn encode(reply: &Reply, envelope: crate::handshake::Envelope, gzip: bool) -> Vec<u8> {
    match envelope {
        crate::handshake::Envelope::Json => encode_json(reply, gzip),
        crate::handshake::Envelope::Gob => {
            let plain = crate::gob::encode_reply(reply);
            if gzip { gzip_bytes(&plain) } else { plain }
        }
    }
}

/// Reads a binary frame: gunzip when the connection is compressed, then the JSON envelope.
pub fn decode_json(frame: &[u8], gzip: bool, max_bytes: usize) -> Result<Request, BadFrame> {
    let plain = if gzip {
        gunzip(frame, max_bytes)?
    } else {
        frame.to_vec()
    };
    let not_envelope = |error: &dyn std::fmt::Display| {
        BadFrame(format!("the frame is not a request envelope: {error}"))
    };
    // serde would fill a struct from a JSON array too; an envelope is an object. Checked on
    // the first byte, so the frame is parsed once, straight into the envelope.
    if plain.trim_ascii_start().first() != Some(&b'{') {
        return Err(not_envelope(&"not a JSON object"));
    }
    serde_json::from_slice(&plain).map_err(|error| not_envelope(&error))
}

/// Writes a reply frame.
pub fn encode_json(reply: &Reply, gzip: bool) -> Vec<u8> {
    let plain = serde_json::to_vec(reply).unwrap_or_default();
    if gzip { gzip_bytes(&plain) } else { plain }
}

/// How much larger than the frame limit a frame may inflate.
const INFLATE_RATIO: usize = 64;

/// Inflates a gzip frame; one that would inflate beyond [`INFLATE_RATIO`] × `max_bytes` is
/// refused.
pub fn gunzip(frame: &[u8], max_bytes: usize) -> Result<Vec<u8>, BadFrame> {
    let mut plain = Vec::new();
    // A small frame must not inflate without bound.
    let limit = u64::try_from(max_bytes.saturating_mul(INFLATE_RATIO)).unwrap_or(u64::MAX);
    let read = INFLATE.with_borrow_mut(|decoder| {
        // The frame goes into the buffer the last one left, and the reader starts afresh.
        let mut input = std::mem::take(decoder.get_mut());
        input.get_mut().clear();
        input.get_mut().extend_from_slice(frame);
        input.set_position(0);
        decoder.reset(input);
        decoder
            .take(limit.saturating_add(1))
            .read_to_end(&mut plain)
    });
    read.map_err(|error| BadFrame(format!("the frame is not gzip: {error}")))?;
    if plain.len() as u64 > limit {
        return Err(BadFrame(format!("the frame inflates beyond {limit} bytes")));
    }
    Ok(plain)
}

thread_local! {
    /// One gzip reader a thread, reset for each frame: a new one allocates and clears its
    /// inflate state, which cost as much as inflating a frame of a few hundred bytes.
    static INFLATE: RefCell<flate2::bufread::GzDecoder<std::io::Cursor<Vec<u8>>>> =
        RefCell::new(flate2::bufread::GzDecoder::new(std::io::Cursor::new(Vec::new())));
}

/// The header of every gzip member written here (RFC 1952): deflate, no flags, no time, no
/// extra fields, unknown OS.
const GZIP_HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];

thread_local! {
    /// One deflate state a thread, reset for each frame. Making a new one for every frame
    /// (as `GzEncoder` does) zeroes its tables and cost more than compressing the frame;
    /// `GzEncoder` cannot be reset, hence the member's header and trailer written here.
    static DEFLATE: RefCell<flate2::Compress> =
        RefCell::new(flate2::Compress::new(flate2::Compression::fast(), false));
}

/// `plain` as one gzip member, the form of every frame on a compressed connection.
pub fn gzip_bytes(plain: &[u8]) -> Vec<u8> {
    DEFLATE.with_borrow_mut(|deflate| {
        deflate.reset();
        // Deflate adds a few bytes a block at worst; the loop covers anything more.
        let mut member =
            Vec::with_capacity(GZIP_HEADER.len() + plain.len() + plain.len() / 64 + 32);
        member.extend_from_slice(&GZIP_HEADER);
        loop {
            let read = usize::try_from(deflate.total_in()).unwrap_or(plain.len());
            let input = &plain[read.min(plain.len())..];
            match deflate.compress_vec(input, &mut member, flate2::FlushCompress::Finish) {
                Ok(flate2::Status::StreamEnd) => break,
                Ok(_) => member.reserve(member.capacity().max(64)),
                // Memory to memory cannot fail; if it ever did, a fresh encoder still
                // writes a correct member.
                Err(_) => return gzip_afresh(plain),
            }
        }
        let mut crc = flate2::Crc::new();
        crc.update(plain);
        member.extend_from_slice(&crc.sum().to_le_bytes());
        // ISIZE: the length modulo 2^32.
        member.extend_from_slice(&(plain.len() as u32).to_le_bytes());
        member
    })
}

/// `plain` as one gzip member from a new encoder.
fn gzip_afresh(plain: &[u8]) -> Vec<u8> {
    use std::io::Write as _;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    // Writing to a Vec cannot fail.
    let _ = encoder.write_all(plain);
    encoder.finish().unwrap_or_default()
}

/// Standard base64, as the JSON envelope carries protobuf.
pub fn base64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_deflate_state_writes_members_any_gzip_reader_reads() {
        // Incompressible bytes larger than the first guess at the output, then small and
        // empty frames from the same state: each is a whole member on its own.
        let mut noise = Vec::with_capacity(200_000);
        let mut x: u32 = 12345;
        for _ in 0..200_000 {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            noise.push((x >> 16) as u8);
        }
        let frames: [&[u8]; 4] = [&noise, b"a small reply, a small reply", b"", &[7; 5000]];
        for frame in frames {
            let member = gzip_bytes(frame);
            let mut plain = Vec::new();
            flate2::read::GzDecoder::new(member.as_slice())
                .read_to_end(&mut plain)
                .unwrap();
            assert_eq!(plain, frame);
            assert_eq!(gunzip(&member, frame.len() + 1).unwrap(), frame);
        }
    }

    #[test]
    fn only_a_json_object_is_an_envelope() {
        let spaced = b" \n {\"reqIdentifier\":1001,\"msgIncr\":\"1\",\"data\":\"\"}";
        assert_eq!(
            decode_json(spaced, false, 1024).unwrap().req_identifier,
            1001
        );
        for bad in [
            &br#"[1001,"", "u1", "op", "1", ""]"#[..],
            b"",
            b"   ",
            b"null",
            b"{\"reqIdentifier\":\"x\"}",
            b"{\"reqIdentifier\":1001",
        ] {
            let error = decode_json(bad, false, 1024).unwrap_err();
            assert!(
                error.0.starts_with("the frame is not a request envelope: "),
                "{error}"
            );
        }
    }

    #[test]
    fn a_js_request_decodes_and_a_reply_renders_as_the_sdk_reads_it() {
        let frame = br#"{"reqIdentifier":1006,"msgIncr":"k1","sendID":"u1","operationID":"op-1","data":"CgJ1MQ=="}"#;
        let request = decode_json(frame, false, 51_200).unwrap();
        assert_eq!(request.req_identifier, 1006);
        assert_eq!(request.data, b"\n\x02u1");
        let reply = Reply {
            req_identifier: 1006,
            msg_incr: "k1".into(),
            operation_id: "op-1".into(),
            err_code: 0,
            err_msg: String::new(),
            data: Some(Vec::new()),
        };
        assert_eq!(
            String::from_utf8(encode_json(&reply, false)).unwrap(),
            r#"{"reqIdentifier":1006,"msgIncr":"k1","operationID":"op-1","errCode":0,"errMsg":"","data":""}"#
        );
        let kick = Reply {
            req_identifier: 2002,
            ..Reply::default()
        };
        assert_eq!(
            String::from_utf8(encode_json(&kick, false)).unwrap(),
            r#"{"reqIdentifier":2002,"msgIncr":"","operationID":"","errCode":0,"errMsg":"","data":null}"#
        );
    }

    #[test]
    fn gzip_round_trips_and_garbage_is_refused() {
        let reply = Reply {
            req_identifier: 1001,
            data: Some(vec![1, 2, 3]),
            ..Reply::default()
        };
        let packed = encode_json(&reply, true);
        let plain = gunzip(&packed, 51_200).unwrap();
        assert_eq!(plain, encode_json(&reply, false));
        assert!(decode_json(b"not gzip", true, 51_200).is_err());
        assert!(decode_json(b"{\"data\":\"***\"}", false, 51_200).is_err());
        assert!(decode_json(b"[1]", false, 51_200).is_err());
        // A bomb: a small frame that inflates past the limit.
        let bomb = gzip_bytes(&vec![b' '; 2048 * INFLATE_RATIO + 1]);
        assert!(bomb.len() < 2048);
        let refused = decode_json(&bomb, true, 2048).unwrap_err();
        assert!(refused.0.contains("inflates beyond"), "{refused}");
        // The thread's reader starts afresh after a refusal, and after a member cut short.
        assert_eq!(gunzip(&packed, 51_200).unwrap(), plain);
        assert!(gunzip(&packed[..packed.len() - 3], 51_200).is_err());
        assert_eq!(gunzip(&packed, 51_200).unwrap(), plain);
    }
}
