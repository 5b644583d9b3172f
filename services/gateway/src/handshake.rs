//! The handshake's query (`shared/reference/gateway.md` §2): the parameters the SDKs send,
//! checked in OpenIM's order, so a refusal carries the code the SDKs react to.

use std::collections::HashMap;

use base64::Engine as _;
use jetim_common::auth::Platform;
use jetim_common::errcode::Code;
use serde::Deserialize;

/// Which envelope the connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Envelope {
    /// `sdkType=js`: JSON in binary frames.
    Json,
    /// `sdkType=go` or none: Go's gob (every native OpenIM app).
    Gob,
}

/// A checked handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectArgs {
    /// The user (`sendID`).
    pub user_id: String,
    /// The login token.
    pub token: String,
    /// The platform the token must be bound to.
    pub platform: Platform,
    /// The operationID of the connect.
    pub operation_id: String,
    /// The envelope.
    pub envelope: Envelope,
    /// Every binary frame gzip'd, both ways.
    pub gzip: bool,
    /// Report the result in-band: a text frame first (browsers cannot read a refused upgrade).
    pub in_band_result: bool,
    /// The app is in the background.
    pub background: bool,
}

/// A refused handshake: the code and what was wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The code.
    pub code: Code,
    /// What was wrong.
    pub detail: String,
}

impl Refusal {
    fn new(code: Code, detail: impl Into<String>) -> Self {
        Self {
            code,
            detail: detail.into(),
        }
    }

    /// The JSON the client reads: `{"errCode","errMsg","errDlt"}`.
    pub fn to_json(&self) -> String {
        serde_json::json!({
            "errCode": self.code.number(),
            "errMsg": self.code.name(),
            "errDlt": self.detail,
        })
        .to_string()
    }
}

/// Go's `strconv.ParseBool`.
fn go_bool(value: &str) -> Option<bool> {
    match value {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

/// The single `v=` form: base64url (no padding) of this JSON.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct Packed {
    token: String,
    #[serde(rename = "userID")]
    user_id: String,
    #[serde(rename = "platformID")]
    platform_id: i32,
    #[serde(rename = "operationID")]
    operation_id: String,
    compression: String,
    sdk_type: String,
    send_response: bool,
    background: bool,
}

/// Whether the in-band result was asked for, read before any other check so even a refusal
/// of the other parameters is reported the way the client can read it.
pub fn wants_in_band_result(query: &HashMap<String, String>) -> bool {
    if let Some(packed) = query.get("v") {
        return unpack(packed).is_ok_and(|packed| packed.send_response);
    }
    query
        .get("isMsgResp")
        .and_then(|value| go_bool(value))
        .unwrap_or(false)
}

fn unpack(packed: &str) -> Result<Packed, Refusal> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(packed.trim_end_matches('='))
        .map_err(|error| Refusal::new(Code::ConnArgs, format!("v is not base64url: {error}")))?;
    serde_json::from_slice(&bytes)
        .map_err(|error| Refusal::new(Code::ConnArgs, format!("v is not the JSON form: {error}")))
}

fn envelope_of(sdk_type: &str) -> Result<Envelope, Refusal> {
    match sdk_type {
        "" | "go" => Ok(Envelope::Gob),
        "js" => Ok(Envelope::Json),
        other => Err(Refusal::new(
            Code::ConnArgs,
            format!("sdkType {other:?} is not go or js"),
        )),
    }
}

fn platform_of(id: i32) -> Result<Platform, Refusal> {
    Platform::from_id(id)
        .ok_or_else(|| Refusal::new(Code::ConnArgs, format!("platformID {id} is not a platform")))
}

/// Checks the query. `compression_header` is the `compression` request header, used when the
/// query does not say.
pub fn parse(
    query: &HashMap<String, String>,
    compression_header: Option<&str>,
) -> Result<ConnectArgs, Refusal> {
    if let Some(packed) = query.get("v") {
        let packed = unpack(packed)?;
        for (name, value) in [
            ("token", &packed.token),
            ("userID", &packed.user_id),
            ("operationID", &packed.operation_id),
        ] {
            if value.is_empty() {
                return Err(Refusal::new(Code::ConnArgs, format!("{name} is missing")));
            }
        }
        return Ok(ConnectArgs {
            platform: platform_of(packed.platform_id)?,
            envelope: envelope_of(&packed.sdk_type)?,
            gzip: packed.compression == "gzip",
            in_band_result: packed.send_response,
            background: packed.background,
            user_id: packed.user_id,
            token: packed.token,
            operation_id: packed.operation_id,
        });
    }
    let required = |name: &str| -> Result<String, Refusal> {
        query
            .get(name)
            .filter(|value| !value.is_empty())
            .cloned()
            .ok_or_else(|| Refusal::new(Code::ConnArgs, format!("{name} is missing")))
    };
    let token = required("token")?;
    let user_id = required("sendID")?;
    let platform_text = required("platformID")?;
    let platform_id: i32 = platform_text.parse().map_err(|_| {
        Refusal::new(
            Code::ConnArgs,
            format!("platformID {platform_text:?} is not a number"),
        )
    })?;
    let platform = platform_of(platform_id)?;
    let operation_id = required("operationID")?;
    // OpenIM requires isBackground and fails without a code when it does not parse.
    let background_text = query.get("isBackground").map_or("", String::as_str);
    let background = go_bool(background_text).ok_or_else(|| {
        Refusal::new(
            Code::ServerInternal,
            format!("isBackground {background_text:?} is not a boolean"),
        )
    })?;
    let in_band_result = wants_in_band_result(query);
    let compression = query
        .get("compression")
        .map(String::as_str)
        .or(compression_header)
        .unwrap_or("");
    let envelope = envelope_of(query.get("sdkType").map_or("", String::as_str))?;
    Ok(ConnectArgs {
        user_id,
        token,
        platform,
        operation_id,
        envelope,
        gzip: compression == "gzip",
        in_band_result,
        background,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
            .collect()
    }

    const JS: &[(&str, &str)] = &[
        ("sendID", "u1"),
        ("token", "t"),
        ("platformID", "5"),
        ("operationID", "op"),
        ("isBackground", "false"),
        ("isMsgResp", "true"),
        ("sdkType", "js"),
    ];

    #[test]
    fn the_js_sdk_query_parses() {
        let args = parse(&query(JS), None).unwrap();
        assert_eq!(args.user_id, "u1");
        assert_eq!(args.platform, Platform::WEB);
        assert_eq!(args.envelope, Envelope::Json);
        assert!(args.in_band_result);
        assert!(!args.gzip);
    }

    #[test]
    fn the_go_sdk_query_parses_with_gzip_from_the_header_too() {
        let go = query(&[
            ("sendID", "u1"),
            ("token", "t"),
            ("platformID", "2"),
            ("operationID", "op"),
            ("isBackground", "F"),
        ]);
        let args = parse(&go, Some("gzip")).unwrap();
        assert_eq!(args.envelope, Envelope::Gob);
        assert!(args.gzip);
        assert!(!args.in_band_result);
    }

    #[test]
    fn each_bad_parameter_gets_its_code() {
        let without = |name: &str| {
            let mut pairs = query(JS);
            pairs.remove(name);
            parse(&pairs, None).unwrap_err()
        };
        for name in ["sendID", "token", "platformID", "operationID"] {
            let refusal = without(name);
            assert_eq!(refusal.code, Code::ConnArgs, "{name}");
            assert_eq!(refusal.detail, format!("{name} is missing"));
        }
        assert_eq!(without("isBackground").code, Code::ServerInternal);
        let with = |name: &str, value: &str| {
            let mut pairs = query(JS);
            pairs.insert(name.to_owned(), value.to_owned());
            parse(&pairs, None).unwrap_err()
        };
        assert_eq!(
            with("platformID", "99").detail,
            "platformID 99 is not a platform"
        );
        assert_eq!(
            with("platformID", "web").detail,
            "platformID \"web\" is not a number"
        );
        assert_eq!(
            with("sdkType", "rust").detail,
            "sdkType \"rust\" is not go or js"
        );
        assert_eq!(with("isBackground", "yes").code, Code::ServerInternal);
        assert_eq!(
            with("sdkType", "rust").to_json(),
            r#"{"errCode":1602,"errDlt":"sdkType \"rust\" is not go or js","errMsg":"args err, need token, sendID, platformID"}"#
        );
    }

    #[test]
    fn the_packed_form_wins_over_the_rest() {
        let packed = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(
            r#"{"token":"t","userID":"u9","platformID":1,"operationID":"o","sdkType":"js","sendResponse":true}"#,
        );
        let pairs = query(&[("v", &packed), ("sendID", "ignored")]);
        assert!(wants_in_band_result(&pairs));
        let args = parse(&pairs, None).unwrap();
        assert_eq!(args.user_id, "u9");
        assert_eq!(args.platform, Platform::IOS);
        let broken = query(&[("v", "!!")]);
        assert_eq!(parse(&broken, None).unwrap_err().code, Code::ConnArgs);
    }
}
