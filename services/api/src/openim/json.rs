//! Decoding request bodies the way OpenIM's Go server does.
//!
//! Go's `encoding/json` matches keys to struct fields case-insensitively (an exact match wins),
//! ignores unknown keys, and treats `null` like a missing key. serde matches exactly, so
//! [`decode`] parses the body into a `serde_json::Value` and deserialises the target through
//! [`Lenient`], which renames each object key to the struct field it matches regardless of
//! case and drops `null` values, at every level. Everything else (numbers must be numbers,
//! strings must be strings) stays strict, and the error text is serde's, which OpenIM also
//! returns as errMsg.

use serde::de::value::BorrowedStrDeserializer;
use serde::de::{DeserializeOwned, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

/// Decodes a JSON body into `T` with Go's key matching.
pub fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, serde_json::Error> {
    let value: Value = serde_json::from_slice(body)?;
    T::deserialize(Lenient(&value))
}

/// A view of a JSON value that deserialises with Go's key matching.
#[derive(Clone, Copy)]
pub struct Lenient<'a>(pub &'a Value);

struct Entries<'a> {
    entries: std::vec::IntoIter<(&'a str, &'a Value)>,
    pending: Option<&'a Value>,
}

impl<'de> MapAccess<'de> for Entries<'de> {
    type Error = serde_json::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Self::Error> {
        let Some((key, value)) = self.entries.next() else {
            return Ok(None);
        };
        self.pending = Some(value);
        seed.deserialize(BorrowedStrDeserializer::new(key))
            .map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, Self::Error> {
        let value = self.pending.take().unwrap_or(&Value::Null);
        seed.deserialize(Lenient(value))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len())
    }
}

struct Items<'a>(std::slice::Iter<'a, Value>);

impl<'de> SeqAccess<'de> for Items<'de> {
    type Error = serde_json::Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Self::Error> {
        self.0
            .next()
            .map(|item| seed.deserialize(Lenient(item)))
            .transpose()
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.0.len())
    }
}

/// The object's entries with `null`s dropped and keys renamed to the matching field.
fn matched_entries<'a>(
    object: &'a serde_json::Map<String, Value>,
    fields: &'static [&'static str],
) -> Vec<(&'a str, &'a Value)> {
    object
        .iter()
        .filter(|(_, value)| !value.is_null())
        .filter_map(|(key, value)| {
            if fields.contains(&key.as_str()) {
                return Some((key.as_str(), value));
            }
            match fields.iter().find(|field| field.eq_ignore_ascii_case(key)) {
                // The exact spelling, when also present, wins over this one.
                Some(field) if object.get(*field).is_some_and(|exact| !exact.is_null()) => None,
                Some(field) => Some((*field, value)),
                None => Some((key.as_str(), value)),
            }
        })
        .collect()
}

fn unexpected(value: &Value) -> serde::de::Unexpected<'_> {
    use serde::de::Unexpected;
    match value {
        Value::Null => Unexpected::Unit,
        Value::Bool(flag) => Unexpected::Bool(*flag),
        Value::Number(_) => Unexpected::Other("number"),
        Value::String(text) => Unexpected::Str(text),
        Value::Array(_) => Unexpected::Seq,
        Value::Object(_) => Unexpected::Map,
    }
}

impl<'de> Deserializer<'de> for Lenient<'de> {
    type Error = serde_json::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match self.0 {
            Value::Array(items) => visitor.visit_seq(Items(items.iter())),
            Value::Object(object) => visitor.visit_map(Entries {
                entries: object
                    .iter()
                    .filter(|(_, value)| !value.is_null())
                    .map(|(key, value)| (key.as_str(), value))
                    .collect::<Vec<_>>()
                    .into_iter(),
                pending: None,
            }),
            scalar => scalar.deserialize_any(visitor),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        if self.0.is_null() {
            visitor.visit_none()
        } else {
            visitor.visit_some(self)
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        match self.0 {
            Value::Object(object) => visitor.visit_map(Entries {
                entries: matched_entries(object, fields).into_iter(),
                pending: None,
            }),
            // Go decodes only an object into a struct; serde would also take an array.
            other => Err(serde::de::Error::invalid_type(unexpected(other), &visitor)),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.0.deserialize_enum(name, variants, visitor)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct seq tuple tuple_struct map identifier ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Default, Deserialize, PartialEq)]
    #[serde(default)]
    struct Inner {
        #[serde(rename = "faceURL")]
        face_url: String,
    }

    #[derive(Debug, Default, Deserialize, PartialEq)]
    #[serde(default)]
    struct Request {
        #[serde(rename = "userID")]
        user_id: String,
        #[serde(rename = "platformID")]
        platform_id: i32,
        #[serde(rename = "userIDs")]
        user_ids: Vec<String>,
        inner: Option<Inner>,
        list: Vec<Inner>,
        #[serde(rename = "isPinned")]
        is_pinned: Option<bool>,
    }

    #[test]
    fn keys_match_fields_in_any_case_at_every_level() {
        let request: Request = decode(
            br#"{"USERID":"u1","platformid":5,"UserIDs":["a"],"INNER":{"faceurl":"f"},"list":[{"FACEURL":"g"}]}"#,
        )
        .unwrap();
        assert_eq!(request.user_id, "u1");
        assert_eq!(request.platform_id, 5);
        assert_eq!(request.user_ids, ["a"]);
        assert_eq!(request.inner.unwrap().face_url, "f");
        assert_eq!(request.list[0].face_url, "g");
    }

    #[test]
    fn an_exact_match_wins_over_another_casing() {
        let request: Request = decode(br#"{"userid":"wrong","userID":"right"}"#).unwrap();
        assert_eq!(request.user_id, "right");
        let request: Request = decode(br#"{"userID":"right","USERID":"wrong"}"#).unwrap();
        assert_eq!(request.user_id, "right");
    }

    #[test]
    fn null_and_missing_keys_leave_the_zero_value_and_unknown_keys_are_ignored() {
        let request: Request =
            decode(br#"{"userID":null,"userIDs":null,"isPinned":null,"extra":[1,2]}"#).unwrap();
        assert_eq!(request, Request::default());
        let request: Request = decode(br#"{"isPinned":false}"#).unwrap();
        assert_eq!(request.is_pinned, Some(false));
    }

    #[test]
    fn types_stay_strict_and_errors_say_what_is_wrong() {
        let error = decode::<Request>(br#"{"platformID":"5"}"#).unwrap_err();
        assert_eq!(
            error.to_string(),
            r#"invalid type: string "5", expected i32"#
        );
        let error = decode::<Request>(br#"{"userIDs":"a"}"#).unwrap_err();
        assert!(error.to_string().contains("expected a sequence"), "{error}");
        let error = decode::<Request>(b"").unwrap_err();
        assert!(error.to_string().contains("EOF"), "{error}");
        let error = decode::<Request>(b"[]").unwrap_err();
        assert_eq!(
            error.to_string(),
            "invalid type: sequence, expected struct Request"
        );
        let error = decode::<Request>(br#"{"inner": "x"}"#).unwrap_err();
        assert!(
            error.to_string().contains("expected struct Inner"),
            "{error}"
        );
        let error = decode::<Request>(br#"{"platformID":99999999999}"#).unwrap_err();
        assert!(error.to_string().contains("expected i32"), "{error}");
    }
}
