//! The token itself: an HS256 JWT with OpenIM's claims, signed with the configured secret.

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use super::TokenError;

/// OpenIM's claims, with Go's field names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user the token is for.
    #[serde(rename = "UserID")]
    pub user_id: String,
    /// The platform the token is bound to.
    #[serde(rename = "PlatformID")]
    pub platform_id: i32,
    /// Expiry, seconds since the epoch.
    pub exp: i64,
    /// Issue time, seconds since the epoch.
    pub iat: i64,
    /// A unique ID, so two tokens issued in the same second differ (one may be kicked while
    /// the other stays valid). OpenIM's tokens have none; clients treat tokens as opaque.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub jti: String,
}

/// Signing and verifying keys from the secret.
#[derive(Clone)]
pub struct Keys {
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl Keys {
    /// Keys for `secret`.
    pub fn new(secret: &str) -> Self {
        Self {
            encoding: EncodingKey::from_secret(secret.as_bytes()),
            decoding: DecodingKey::from_secret(secret.as_bytes()),
        }
    }

    /// Signs `claims`.
    pub fn sign(&self, claims: &Claims) -> Result<String, TokenError> {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.encoding)
            .map_err(|error| TokenError::Unknown(format!("cannot sign a token: {error}")))
    }

    /// Verifies the signature and times and returns the claims.
    pub fn verify(&self, token: &str, now: i64) -> Result<Claims, TokenError> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.validate_exp = false;
        validation.required_spec_claims.clear();
        let claims = jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation)
            .map_err(|error| match error.kind() {
                ErrorKind::InvalidToken
                | ErrorKind::Base64(_)
                | ErrorKind::Json(_)
                | ErrorKind::Utf8(_) => TokenError::Malformed,
                ErrorKind::ImmatureSignature => TokenError::NotValidYet,
                ErrorKind::ExpiredSignature => TokenError::Expired,
                _ => TokenError::Unknown(error.to_string()),
            })?
            .claims;
        // Checked here rather than by the library so the clock is the caller's.
        if claims.exp <= now {
            return Err(TokenError::Expired);
        }
        if claims.iat > now + 60 {
            return Err(TokenError::NotValidYet);
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: i64) -> Claims {
        Claims {
            user_id: "u1".into(),
            platform_id: 5,
            exp,
            iat: 995,
            jti: String::new(),
        }
    }

    #[test]
    fn a_signed_token_verifies_with_the_same_secret() {
        let keys = Keys::new("openIM123");
        let token = keys.sign(&claims(2_000)).unwrap();
        assert_eq!(keys.verify(&token, 1_000).unwrap(), claims(2_000));
    }

    #[test]
    fn each_failure_has_its_own_kind() {
        let keys = Keys::new("openIM123");
        assert!(matches!(
            keys.verify("not a token", 1_000),
            Err(TokenError::Malformed)
        ));
        assert!(matches!(
            keys.verify("a.b.c", 1_000),
            Err(TokenError::Malformed)
        ));
        let token = keys.sign(&claims(2_000)).unwrap();
        assert!(matches!(
            keys.verify(&token, 2_000),
            Err(TokenError::Expired)
        ));
        assert!(matches!(
            keys.verify(&token, 100),
            Err(TokenError::NotValidYet)
        ));
        let forged = Keys::new("another secret").sign(&claims(2_000)).unwrap();
        assert!(matches!(
            keys.verify(&forged, 1_000),
            Err(TokenError::Unknown(_))
        ));
    }
}
