//! The Go SDK's envelope: Go `encoding/gob`, one self-describing stream per frame
//! (`shared/reference/gateway.md` §4.2).
//!
//! The Go SDK encodes and decodes every frame with a fresh encoder and decoder, so each
//! frame carries the definition of its struct type followed by one value, and values are
//! matched to fields by name. This module implements exactly that subset of gob: structs
//! whose fields are `int`, `uint`, `bool`, `string` or `[]byte`, one value per frame. No
//! crate implements gob for Rust in a form this needs (a decoder driven by the type
//! definition in the same frame, and an encoder writing Go's bytes exactly), and the subset
//! is small, so it is written here and tested against bytes Go produced.

use crate::envelope::{Reply, Request};

/// Gob's built-in type IDs.
const BOOL: i64 = 1;
const INT: i64 = 2;
const UINT: i64 = 3;
const BYTES: i64 = 5;
const STRING: i64 = 6;
/// The first ID of a user-defined type.
const FIRST_USER_TYPE: i64 = 64;
/// More fields than any envelope has; a definition with more is refused.
const MAX_FIELDS: u64 = 64;

/// Why a frame is not a gob envelope.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a gob envelope: {0}")]
pub struct GobError(String);

fn bad(reason: impl Into<String>) -> GobError {
    GobError(reason.into())
}

// ---- writing ----

fn put_uint(out: &mut Vec<u8>, value: u64) {
    if value < 0x80 {
        out.push(u8::try_from(value).unwrap_or(0));
        return;
    }
    let bytes = value.to_be_bytes();
    let skip = bytes.iter().take_while(|byte| **byte == 0).count();
    let length = bytes.len() - skip;
    // One byte holding -length, then the big-endian value.
    out.push(u8::try_from(256 - length).unwrap_or(0));
    out.extend_from_slice(&bytes[skip..]);
}

fn put_int(out: &mut Vec<u8>, value: i64) {
    let folded = if value < 0 {
        (!(value as u64) << 1) | 1
    } else {
        (value as u64) << 1
    };
    put_uint(out, folded);
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_uint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// Appends one message (length, then body) to `out`.
fn put_message(out: &mut Vec<u8>, body: &[u8]) {
    put_uint(out, body.len() as u64);
    out.extend_from_slice(body);
}

/// The type definition message of a struct named `name` with `fields` (name, type ID),
/// as type [`FIRST_USER_TYPE`].
fn struct_definition(name: &str, fields: &[(&str, i64)]) -> Vec<u8> {
    let mut body = Vec::new();
    put_int(&mut body, -FIRST_USER_TYPE);
    // wireType.StructT (field 2) → structType.CommonType (field 0) → Name, Id.
    body.extend_from_slice(&[0x03, 0x01, 0x01]);
    put_bytes(&mut body, name.as_bytes());
    body.push(0x01);
    put_int(&mut body, FIRST_USER_TYPE);
    body.push(0x00);
    // structType.Field (field 1): the fields, each {Name, Id}.
    body.push(0x01);
    put_uint(&mut body, fields.len() as u64);
    for (field, id) in fields {
        body.push(0x01);
        put_bytes(&mut body, field.as_bytes());
        body.push(0x01);
        put_int(&mut body, *id);
        body.push(0x00);
    }
    // End of structType, end of wireType.
    body.extend_from_slice(&[0x00, 0x00]);
    let mut message = Vec::new();
    put_message(&mut message, &body);
    message
}

/// A field value to write.
enum Value<'a> {
    Int(i64),
    Text(&'a [u8]),
}

/// The value message of a struct of type [`FIRST_USER_TYPE`]; zero values are left out.
fn struct_value(values: &[Value<'_>]) -> Vec<u8> {
    let mut body = Vec::new();
    put_int(&mut body, FIRST_USER_TYPE);
    let mut previous: i64 = -1;
    for (index, value) in values.iter().enumerate() {
        let index = i64::try_from(index).unwrap_or(i64::MAX);
        let mut encoded = Vec::new();
        match value {
            Value::Int(0) => continue,
            Value::Int(number) => put_int(&mut encoded, *number),
            Value::Text([]) => continue,
            Value::Text(bytes) => put_bytes(&mut encoded, bytes),
        }
        put_uint(&mut body, u64::try_from(index - previous).unwrap_or(0));
        body.extend_from_slice(&encoded);
        previous = index;
    }
    body.push(0x00);
    let mut message = Vec::new();
    put_message(&mut message, &body);
    message
}

/// Encodes a reply or push the way the Go SDK decodes `GeneralWsResp` (by field name).
pub fn encode_reply(reply: &Reply) -> Vec<u8> {
    let mut frame = struct_definition(
        "Resp",
        &[
            ("ReqIdentifier", INT),
            ("MsgIncr", STRING),
            ("OperationID", STRING),
            ("ErrCode", INT),
            ("ErrMsg", STRING),
            ("Data", BYTES),
        ],
    );
    let data = reply.data.as_deref().unwrap_or_default();
    frame.extend(struct_value(&[
        Value::Int(i64::from(reply.req_identifier)),
        Value::Text(reply.msg_incr.as_bytes()),
        Value::Text(reply.operation_id.as_bytes()),
        Value::Int(i64::from(reply.err_code)),
        Value::Text(reply.err_msg.as_bytes()),
        Value::Text(data),
    ]));
    frame
}

/// Encodes a request as the Go SDK's `GeneralWsReq`, byte for byte as Go writes it: what a
/// Go-speaking client (or a test standing in for one) sends.
pub fn encode_request(request: &Request) -> Vec<u8> {
    let mut frame = struct_definition(
        "GeneralWsReq",
        &[
            ("ReqIdentifier", INT),
            ("Token", STRING),
            ("SendID", STRING),
            ("OperationID", STRING),
            ("MsgIncr", STRING),
            ("Data", BYTES),
        ],
    );
    frame.extend(struct_value(&[
        Value::Int(i64::from(request.req_identifier)),
        Value::Text(request.token.as_bytes()),
        Value::Text(request.send_id.as_bytes()),
        Value::Text(request.operation_id.as_bytes()),
        Value::Text(request.msg_incr.as_bytes()),
        Value::Text(&request.data),
    ]));
    frame
}

// ---- reading ----

struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    fn byte(&mut self) -> Result<u8, GobError> {
        let (&first, rest) = self
            .bytes
            .split_first()
            .ok_or_else(|| bad("the frame ends too early"))?;
        self.bytes = rest;
        Ok(first)
    }

    fn take(&mut self, length: u64) -> Result<&'a [u8], GobError> {
        let length = usize::try_from(length).map_err(|_| bad("a length is too large"))?;
        if length > self.bytes.len() {
            return Err(bad("a length runs past the end of the frame"));
        }
        let (taken, rest) = self.bytes.split_at(length);
        self.bytes = rest;
        Ok(taken)
    }

    fn uint(&mut self) -> Result<u64, GobError> {
        let first = self.byte()?;
        if first < 0x80 {
            return Ok(u64::from(first));
        }
        let length = 256 - u64::from(first);
        if length > 8 {
            return Err(bad("an unsigned number longer than 8 bytes"));
        }
        Ok(self
            .take(length)?
            .iter()
            .fold(0u64, |value, byte| (value << 8) | u64::from(*byte)))
    }

    fn int(&mut self) -> Result<i64, GobError> {
        let folded = self.uint()?;
        let magnitude = (folded >> 1) as i64;
        Ok(if folded & 1 == 1 {
            !magnitude
        } else {
            magnitude
        })
    }

    fn text(&mut self) -> Result<&'a [u8], GobError> {
        let length = self.uint()?;
        self.take(length)
    }

    /// The next field number of a struct, or `None` at its end.
    fn field(&mut self, previous: &mut i64, count: u64) -> Result<Option<u64>, GobError> {
        let delta = self.uint()?;
        if delta == 0 {
            return Ok(None);
        }
        let number = previous
            .checked_add(i64::try_from(delta).map_err(|_| bad("a field delta is too large"))?)
            .and_then(|number| u64::try_from(number).ok())
            .filter(|number| *number < count)
            .ok_or_else(|| bad("a field number beyond the struct"))?;
        *previous = i64::try_from(number).unwrap_or(i64::MAX);
        Ok(Some(number))
    }
}

/// A struct type as its definition describes it.
struct StructType {
    id: i64,
    fields: Vec<(String, i64)>,
}

/// Reads the body of a type definition message: a `wireType` holding a `structType`.
fn read_definition(reader: &mut Reader<'_>) -> Result<StructType, GobError> {
    let mut defined: Option<StructType> = None;
    let mut wire_field = -1;
    while let Some(number) = reader.field(&mut wire_field, 7)? {
        if number != 2 {
            return Err(bad("only struct types are understood"));
        }
        let mut structure = StructType {
            id: 0,
            fields: Vec::new(),
        };
        let mut struct_field = -1;
        while let Some(number) = reader.field(&mut struct_field, 2)? {
            if number == 0 {
                let mut common_field = -1;
                while let Some(number) = reader.field(&mut common_field, 2)? {
                    if number == 0 {
                        reader.text()?;
                    } else {
                        structure.id = reader.int()?;
                    }
                }
            } else {
                let count = reader.uint()?;
                if count > MAX_FIELDS {
                    return Err(bad("a struct with too many fields"));
                }
                for _ in 0..count {
                    let (mut name, mut id) = (String::new(), 0);
                    let mut field_field = -1;
                    while let Some(number) = reader.field(&mut field_field, 2)? {
                        if number == 0 {
                            name = String::from_utf8(reader.text()?.to_vec())
                                .map_err(|_| bad("a field name is not UTF-8"))?;
                        } else {
                            id = reader.int()?;
                        }
                    }
                    structure.fields.push((name, id));
                }
            }
        }
        defined = Some(structure);
    }
    defined.ok_or_else(|| bad("an empty type definition"))
}

/// A field value read from a frame.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Field {
    Int(i64),
    Other,
    Bytes(Vec<u8>),
    Text(Vec<u8>),
}

/// Reads the one struct value of a frame (after gunzip), with its fields by name.
fn read_struct(frame: &[u8]) -> Result<Vec<(String, Field)>, GobError> {
    let mut stream = Reader { bytes: frame };
    let mut types: Vec<StructType> = Vec::new();
    while !stream.is_empty() {
        let length = stream.uint()?;
        let mut message = Reader {
            bytes: stream.take(length)?,
        };
        let type_id = message.int()?;
        if type_id < 0 {
            let definition = read_definition(&mut message)?;
            if definition.id != -type_id {
                return Err(bad("a type definition under another type's ID"));
            }
            types.push(definition);
            continue;
        }
        let structure = types
            .iter()
            .find(|defined| defined.id == type_id)
            .ok_or_else(|| bad(format!("a value of undefined type {type_id}")))?;
        let fields = read_fields(&mut message, structure)?;
        if !message.is_empty() || !stream.is_empty() {
            return Err(bad("bytes after the value"));
        }
        return Ok(fields);
    }
    Err(bad("no value in the frame"))
}

fn read_fields(
    reader: &mut Reader<'_>,
    structure: &StructType,
) -> Result<Vec<(String, Field)>, GobError> {
    let mut fields = Vec::new();
    let count = structure.fields.len() as u64;
    let mut previous = -1;
    while let Some(number) = reader.field(&mut previous, count)? {
        let (name, type_id) = &structure.fields[usize::try_from(number).unwrap_or(0)];
        let value = match *type_id {
            INT => Field::Int(reader.int()?),
            BOOL | UINT | 4 => {
                reader.uint()?;
                Field::Other
            }
            BYTES => Field::Bytes(reader.text()?.to_vec()),
            STRING => Field::Text(reader.text()?.to_vec()),
            _ => {
                return Err(bad(format!(
                    "field {name} has a type this gateway cannot read"
                )));
            }
        };
        fields.push((name.clone(), value));
    }
    Ok(fields)
}

/// The fields of an envelope, checked against the types the Go structs give them.
struct Envelope {
    fields: Vec<(String, Field)>,
}

impl Envelope {
    fn read(frame: &[u8], names: &[&str]) -> Result<Self, GobError> {
        let fields = read_struct(frame)?;
        if !fields
            .iter()
            .any(|(name, _)| names.contains(&name.as_str()))
            && !fields.is_empty()
        {
            return Err(bad("no field of the envelope"));
        }
        Ok(Self { fields })
    }

    fn get(&self, name: &str) -> Option<&Field> {
        self.fields
            .iter()
            .find(|(field, _)| field == name)
            .map(|(_, value)| value)
    }

    fn int(&self, name: &str) -> Result<i32, GobError> {
        match self.get(name) {
            None => Ok(0),
            Some(Field::Int(number)) => {
                i32::try_from(*number).map_err(|_| bad(format!("{name} is out of range")))
            }
            Some(_) => Err(bad(format!("field {name} is not an int"))),
        }
    }

    fn text(&self, name: &str) -> Result<String, GobError> {
        match self.get(name) {
            None => Ok(String::new()),
            Some(Field::Text(bytes)) => String::from_utf8(bytes.clone())
                .map_err(|_| bad(format!("field {name} is not UTF-8"))),
            Some(_) => Err(bad(format!("field {name} is not a string"))),
        }
    }

    fn bytes(&self, name: &str) -> Result<Vec<u8>, GobError> {
        match self.get(name) {
            None => Ok(Vec::new()),
            Some(Field::Bytes(bytes)) => Ok(bytes.clone()),
            Some(_) => Err(bad(format!("field {name} is not a byte slice"))),
        }
    }
}

/// Decodes a request frame (after gunzip) written by the Go SDK's `GeneralWsReq`, or any
/// struct with the same field names.
pub fn decode_request(frame: &[u8]) -> Result<Request, GobError> {
    let envelope = Envelope::read(
        frame,
        &[
            "ReqIdentifier",
            "Token",
            "SendID",
            "OperationID",
            "MsgIncr",
            "Data",
        ],
    )?;
    Ok(Request {
        req_identifier: envelope.int("ReqIdentifier")?,
        token: envelope.text("Token")?,
        send_id: envelope.text("SendID")?,
        operation_id: envelope.text("OperationID")?,
        msg_incr: envelope.text("MsgIncr")?,
        data: envelope.bytes("Data")?,
    })
}

/// Decodes a reply frame (after gunzip) as the Go SDK reads `GeneralWsResp`: what a Go
/// client sees of [`encode_reply`]. An empty `Data` reads as `None`.
pub fn decode_reply(frame: &[u8]) -> Result<Reply, GobError> {
    let envelope = Envelope::read(
        frame,
        &[
            "ReqIdentifier",
            "ErrCode",
            "ErrMsg",
            "MsgIncr",
            "OperationID",
            "Data",
        ],
    )?;
    let data = envelope.bytes("Data")?;
    Ok(Reply {
        req_identifier: envelope.int("ReqIdentifier")?,
        msg_incr: envelope.text("MsgIncr")?,
        operation_id: envelope.text("OperationID")?,
        err_code: envelope.int("ErrCode")?,
        err_msg: envelope.text("ErrMsg")?,
        data: (!data.is_empty()).then_some(data),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hex with spaces and quoted ASCII, as the reference writes frames.
    fn frame(layout: &str) -> Vec<u8> {
        let mut bytes = Vec::new();
        for (index, part) in layout.split('"').enumerate() {
            if index % 2 == 1 {
                bytes.extend_from_slice(part.as_bytes());
            } else {
                let digits: String = part.chars().filter(char::is_ascii_hexdigit).collect();
                for pair in digits.as_bytes().chunks(2) {
                    bytes.push(u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16).unwrap());
                }
            }
        }
        bytes
    }

    /// The Go SDK asking 1001 for u1 (the reference's bytes, as Go wrote them).
    const GO_REQUEST: &str = r#"65 7f 03 01 01 0c "GeneralWsReq" 01 ff80 00 01 06
        01 0d "ReqIdentifier" 01 04 00   01 05 "Token" 01 0c 00   01 06 "SendID" 01 0c 00
        01 0b "OperationID" 01 0c 00     01 07 "MsgIncr" 01 0c 00  01 04 "Data" 01 0a 00   00 00
        1d ff80  01 fe07d2  02 02 "u1"  01 03 "op1"  01 05 "u1_42"  01 04 0a027531  00"#;

    /// Go's encoding of the server's reply to it.
    const GO_REPLY: &str = r#"5f 7f 03 01 01 04 "Resp" 01 ff80 00 01 06
        01 0d "ReqIdentifier" 01 04 00   01 07 "MsgIncr" 01 0c 00   01 0b "OperationID" 01 0c 00
        01 07 "ErrCode" 01 04 00         01 06 "ErrMsg" 01 0c 00    01 04 "Data" 01 0a 00   00 00
        23 ff80  01 fe07d2  01 05 "u1_42"  01 03 "op1"  03 0e 0a0c0a0873695f75315f75321001  00"#;

    #[test]
    fn numbers_encode_as_go_does() {
        let mut out = Vec::new();
        put_uint(&mut out, 256);
        assert_eq!(out, [0xfe, 0x01, 0x00]);
        for (number, bytes) in [
            (64i64, vec![0xff, 0x80]),
            (-64, vec![0x7f]),
            (1001, vec![0xfe, 0x07, 0xd2]),
        ] {
            let mut out = Vec::new();
            put_int(&mut out, number);
            assert_eq!(out, bytes, "{number}");
            assert_eq!(Reader { bytes: &bytes }.int().unwrap(), number);
        }
        let mut out = Vec::new();
        put_int(&mut out, i64::MIN);
        assert_eq!(Reader { bytes: &out }.int().unwrap(), i64::MIN);
    }

    #[test]
    fn the_go_sdk_request_decodes() {
        let bytes = frame(GO_REQUEST);
        assert_eq!(bytes.len(), 132);
        let request = decode_request(&bytes).unwrap();
        assert_eq!(request.req_identifier, 1001);
        assert_eq!(request.token, "");
        assert_eq!(request.send_id, "u1");
        assert_eq!(request.operation_id, "op1");
        assert_eq!(request.msg_incr, "u1_42");
        assert_eq!(request.data, [0x0a, 0x02, 0x75, 0x31]);
        assert_eq!(
            encode_request(&request),
            bytes,
            "and encodes back as Go wrote it"
        );
    }

    #[test]
    fn replies_encode_byte_for_byte_as_go() {
        let reply = Reply {
            req_identifier: 1001,
            msg_incr: "u1_42".into(),
            operation_id: "op1".into(),
            err_code: 0,
            err_msg: String::new(),
            data: Some(frame("0a0c0a0873695f75315f75321001")),
        };
        assert_eq!(encode_reply(&reply), frame(GO_REPLY));
        let kick = Reply {
            req_identifier: 2002,
            ..Reply::default()
        };
        let definition_length = frame(GO_REPLY).len() - 0x24;
        let mut expected = frame(GO_REPLY)[..definition_length].to_vec();
        expected.extend(frame("07 ff80 01 fe0fa4 00"));
        assert_eq!(encode_reply(&kick), expected);
    }

    #[test]
    fn an_error_reply_reads_back_as_go_reads_it() {
        let reply = Reply {
            req_identifier: 1003,
            msg_incr: "m".into(),
            operation_id: "o".into(),
            err_code: 1001,
            err_msg: "ArgsError: x".into(),
            data: None,
        };
        assert_eq!(decode_reply(&encode_reply(&reply)).unwrap(), reply);
        let negative = Reply {
            err_code: -1,
            ..reply
        };
        assert_eq!(decode_reply(&encode_reply(&negative)).unwrap(), negative);
    }

    #[test]
    fn fields_match_by_name_in_any_order_and_unknown_ones_are_skipped() {
        let mut bytes = struct_definition(
            "Other",
            &[
                ("Extra", STRING),
                ("Data", BYTES),
                ("Flag", BOOL),
                ("ReqIdentifier", INT),
                ("SendID", STRING),
            ],
        );
        bytes.extend(struct_value(&[
            Value::Text(b"ignored"),
            Value::Text(b"\x01\x02"),
            Value::Int(1),
            Value::Int(1006),
            Value::Text(b"u9"),
        ]));
        let request = decode_request(&bytes).unwrap();
        assert_eq!(request.req_identifier, 1006);
        assert_eq!(request.send_id, "u9");
        assert_eq!(request.data, [1, 2]);
    }

    #[test]
    fn every_truncation_and_corruption_is_an_error_not_a_panic() {
        let bytes = frame(GO_REQUEST);
        for end in 0..bytes.len() {
            assert!(decode_request(&bytes[..end]).is_err(), "truncated at {end}");
        }
        for index in 0..bytes.len() {
            for flip in [0x01u8, 0x80, 0xff] {
                let mut corrupt = bytes.clone();
                corrupt[index] ^= flip;
                let _ = decode_request(&corrupt);
            }
        }
        // A value before any definition, a wrong field type, a huge length.
        assert!(decode_request(&frame("04 ff80 01 02 00")).is_err());
        let mut wrong = struct_definition("R", &[("ReqIdentifier", STRING)]);
        wrong.extend(struct_value(&[Value::Text(b"x")]));
        assert!(decode_request(&wrong).is_err());
        assert!(decode_request(&frame("f8 ffffffffffffffff")).is_err());
        let mut nothing = struct_definition("R", &[("Unrelated", INT)]);
        nothing.extend(struct_value(&[Value::Int(3)]));
        assert!(decode_request(&nothing).is_err());
    }
}
