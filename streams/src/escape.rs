//! The one mapping between an OpenIM ID and a NATS subject token.
//!
//! OpenIM IDs are free-form strings; a subject token cannot hold `.`, `*`, `>` or white space,
//! and a KV key allows only `-/_=.` besides ASCII letters and digits. The token keeps ASCII
//! letters, digits, `-`, `_` and `/` as they are and writes every other byte of the UTF-8
//! encoding as `=XX` (two upper-case hex digits). So `alice` stays `alice`, `a.b` becomes
//! `a=2Eb`, `a@b` becomes `a=40b` and `张` becomes `=E5=BC=A0`. The same token is valid in a
//! subject and in a KV key, and the mapping is one-to-one: [`unescape`] gives back exactly the
//! string that [`escape`] was given.
//!
//! Operators type the escaped form when they filter subjects, e.g.
//! `nats stream view IM_CONV --subject 'im.conv.si_a=2Eb_c.msg'`.

use std::fmt::Write as _;

/// Why a string cannot be, or is not, an escaped token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// An empty ID has no token: a subject cannot have an empty token.
    #[error("an empty ID cannot be used in a subject")]
    Empty,
    /// A `=` not followed by two upper-case hex digits, or a byte that escaping never emits.
    #[error("'{token}' is not an escaped subject token")]
    Malformed {
        /// The token that failed to parse.
        token: String,
    },
    /// The unescaped bytes are not UTF-8.
    #[error("'{token}' does not unescape to UTF-8")]
    NotUtf8 {
        /// The token that failed to parse.
        token: String,
    },
}

fn stands_for_itself(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'/')
}

/// Maps an ID to a subject token.
pub fn escape(id: &str) -> Result<String, TokenError> {
    if id.is_empty() {
        return Err(TokenError::Empty);
    }
    if id.bytes().all(stands_for_itself) {
        return Ok(id.to_owned());
    }
    let mut token = String::with_capacity(id.len() + 8);
    for byte in id.bytes() {
        if stands_for_itself(byte) {
            token.push(char::from(byte));
        } else {
            // Writing to a String cannot fail.
            let _ = write!(token, "={byte:02X}");
        }
    }
    Ok(token)
}

/// Maps a subject token back to the ID it was made from.
pub fn unescape(token: &str) -> Result<String, TokenError> {
    let malformed = || TokenError::Malformed {
        token: token.to_owned(),
    };
    if token.is_empty() {
        return Err(TokenError::Empty);
    }
    let mut bytes = Vec::with_capacity(token.len());
    let mut rest = token.as_bytes();
    while let Some((&byte, tail)) = rest.split_first() {
        if byte == b'=' {
            let [high, low, after @ ..] = tail else {
                return Err(malformed());
            };
            let decoded = hex_value(*high)
                .zip(hex_value(*low))
                .map(|(high, low)| high << 4 | low)
                .ok_or_else(malformed)?;
            // Only bytes that escape() writes as =XX may appear escaped, so each ID has
            // exactly one token.
            if stands_for_itself(decoded) {
                return Err(malformed());
            }
            bytes.push(decoded);
            rest = after;
        } else if stands_for_itself(byte) {
            bytes.push(byte);
            rest = tail;
        } else {
            return Err(malformed());
        }
    }
    String::from_utf8(bytes).map_err(|_| TokenError::NotUtf8 {
        token: token.to_owned(),
    })
}

fn hex_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn plain_ids_stand_for_themselves() {
        assert_eq!(escape("alice_01-X").unwrap(), "alice_01-X");
        assert_eq!(escape("si_alice_bob").unwrap(), "si_alice_bob");
    }

    #[test]
    fn subject_metacharacters_spaces_and_non_ascii_are_escaped() {
        assert_eq!(escape("a.b").unwrap(), "a=2Eb");
        assert_eq!(escape("a*>b").unwrap(), "a=2A=3Eb");
        assert_eq!(escape("a b\t").unwrap(), "a=20b=09");
        assert_eq!(escape("x=1").unwrap(), "x=3D1");
        assert_eq!(escape("张").unwrap(), "=E5=BC=A0");
    }

    #[test]
    fn empty_ids_have_no_token() {
        assert_eq!(escape(""), Err(TokenError::Empty));
        assert_eq!(unescape(""), Err(TokenError::Empty));
    }

    #[test]
    fn tokens_escape_never_writes_are_refused() {
        for token in [
            "a=", "a=4", "a=zz", "a=2e", "a.b", "a b", "a%b", "=41", "=FF",
        ] {
            assert!(unescape(token).is_err(), "{token} should be refused");
        }
    }

    proptest! {
        #[test]
        fn any_id_round_trips(id in any::<String>().prop_filter("non-empty", |s| !s.is_empty())) {
            let token = escape(&id).unwrap();
            prop_assert_eq!(unescape(&token).unwrap(), id);
        }

        #[test]
        fn a_token_is_a_valid_subject_token_and_kv_key(id in "\\PC*[.*> =]\\PC*") {
            let token = escape(&id).unwrap();
            prop_assert!(!token.is_empty());
            prop_assert!(token.bytes().all(|byte| byte.is_ascii_alphanumeric() || b"-_/=".contains(&byte)));
        }
    }
}
