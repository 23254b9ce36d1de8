//! The settings of the channels an administrator configures through the API: SMS through a
//! Twilio-compatible provider, LINE Messaging API push, and an outgoing webhook. Each has
//! public settings (stored as they are, shown to administrators) and one credential (the
//! provider's token or the webhook's signing secret), which is stored encrypted and never
//! shown again.
//!
//! Only the shape is checked here; the contact fields named are checked against the schema by
//! the API, and the credential by the provider at the first send.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::flow::Channel;

/// The rights entity an administrator's settings live under (administrators only).
pub const CHANNELS: &str = "channels";

/// A configured channel's public settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "channel", rename_all = "snake_case")]
pub enum ChannelSettings {
    Sms(SmsSettings),
    Line(LineSettings),
    Webhook(WebhookSettings),
}

/// SMS through Twilio's Messages API, or any provider that speaks it. The credential is the
/// account's auth token (or an API key secret, with the key's SID as `api_key_sid`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SmsSettings {
    /// Where the provider's API is; Twilio's unless another compatible provider is used.
    #[serde(default = "twilio_url")]
    pub base_url: String,
    /// The account the messages are sent from (`AC…`).
    pub account_sid: String,
    /// Logs in with an API key (`SK…`) instead of the account SID when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_sid: Option<String>,
    /// The sending number in E.164 form (`+815012345678`), an alphanumeric sender ID, or a
    /// messaging service (`MG…`).
    pub from: String,
    /// The contact field holding the number to send to.
    #[serde(default = "mobile_phone")]
    pub phone_field: String,
    /// The country code numbers stored in national form (`090-1234-5678`) belong to.
    #[serde(default = "japan")]
    pub country_code: String,
    /// Requests in flight at once.
    #[serde(default = "four")]
    pub concurrency: u32,
}

/// LINE Messaging API push messages to the contact's LINE user ID. The credential is the
/// channel access token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LineSettings {
    #[serde(default = "line_url")]
    pub base_url: String,
    /// The contact field holding the LINE user ID (`U` and 32 hex digits).
    #[serde(default = "line_user_id")]
    pub user_field: String,
    #[serde(default = "four")]
    pub concurrency: u32,
}

/// Each message POSTed as JSON to a URL, signed with HMAC-SHA256. The credential is the
/// signing secret the receiver checks against.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookSettings {
    pub url: String,
    /// The contact fields sent with each message (and no others).
    #[serde(default)]
    pub fields: Vec<String>,
    #[serde(default = "four")]
    pub concurrency: u32,
}

fn twilio_url() -> String {
    "https://api.twilio.com".into()
}
fn line_url() -> String {
    "https://api.line.me".into()
}
fn mobile_phone() -> String {
    "mobile_phone".into()
}
fn line_user_id() -> String {
    "line_user_id".into()
}
fn japan() -> String {
    "81".into()
}
fn four() -> u32 {
    4
}

/// The most requests a configured channel may have in flight.
pub const MAX_CONCURRENCY: u32 = 64;

/// A problem with channel settings, at a field such as `base_url`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SettingsError {
    pub at: String,
    pub message: String,
}

fn problem(at: &str, message: impl Into<String>) -> SettingsError {
    SettingsError {
        at: at.into(),
        message: message.into(),
    }
}

/// Providers are reached over HTTPS; plain HTTP only on this machine (a local relay or test
/// double), so credentials never cross a network in clear.
fn check_url(at: &str, url: &str, errors: &mut Vec<SettingsError>) {
    let Some((scheme, rest)) = url.split_once("://") else {
        errors.push(problem(
            at,
            format!("{url:?} is not a URL such as https://api.example.com"),
        ));
        return;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.contains('@') {
        errors.push(problem(
            at,
            "must not carry a user or password: the credential is set apart",
        ));
    }
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => host.split(':').next().unwrap_or_default(),
    };
    if name.is_empty() {
        errors.push(problem(at, format!("{url:?} names no host")));
    }
    let loopback = matches!(name, "localhost" | "127.0.0.1" | "::1");
    match scheme {
        "https" => {}
        "http" if loopback => {}
        "http" => errors.push(problem(
            at,
            "must be https:// (plain http:// only to localhost), so the credential is not sent in clear",
        )),
        other => errors.push(problem(at, format!("{other}:// is not http(s)"))),
    }
}

fn check_concurrency(concurrency: u32, errors: &mut Vec<SettingsError>) {
    if !(1..=MAX_CONCURRENCY).contains(&concurrency) {
        errors.push(problem(
            "concurrency",
            format!("must be 1 to {MAX_CONCURRENCY}"),
        ));
    }
}

fn is_sid(v: &str, prefix: &str) -> bool {
    v.len() == 34 && v.starts_with(prefix) && v[2..].chars().all(|c| c.is_ascii_alphanumeric())
}

/// Whether an SMS may be sent as `from`: a number in E.164 form, a messaging service (`MG…`),
/// or an alphanumeric sender ID of up to 11 characters.
pub fn sms_sender_ok(from: &str) -> bool {
    (from.starts_with('+')
        && (8..=16).contains(&from.len())
        && from[1..].chars().all(|c| c.is_ascii_digit()))
        || is_sid(from, "MG")
        || ((1..=11).contains(&from.len())
            && from.chars().all(|c| c.is_ascii_alphanumeric() || c == ' ')
            && from.chars().any(|c| c.is_ascii_alphabetic()))
}

impl ChannelSettings {
    /// The URLs the settings send to, by field.
    pub fn urls(&self) -> Vec<(&'static str, &str)> {
        match self {
            ChannelSettings::Sms(s) => vec![("base_url", &s.base_url)],
            ChannelSettings::Line(s) => vec![("base_url", &s.base_url)],
            ChannelSettings::Webhook(s) => vec![("url", &s.url)],
        }
    }

    pub fn channel(&self) -> Channel {
        match self {
            ChannelSettings::Sms(_) => Channel::Sms,
            ChannelSettings::Line(_) => Channel::Line,
            ChannelSettings::Webhook(_) => Channel::Webhook,
        }
    }

    /// The channels that can be configured this way.
    pub fn configurable(channel: Channel) -> bool {
        matches!(channel, Channel::Sms | Channel::Line | Channel::Webhook)
    }

    /// What the credential is called for this channel, for messages and forms.
    pub fn credential_name(&self) -> &'static str {
        match self {
            ChannelSettings::Sms(_) => "auth_token",
            ChannelSettings::Line(_) => "channel_access_token",
            ChannelSettings::Webhook(_) => "signing_secret",
        }
    }

    /// Where the credential is sent, and for which account: a credential is sealed to this, so
    /// it never follows a changed address (it must be given again).
    pub fn destination(&self) -> String {
        match self {
            ChannelSettings::Sms(s) => format!(
                "{} {} {}",
                s.base_url,
                s.account_sid,
                s.api_key_sid.as_deref().unwrap_or("")
            ),
            ChannelSettings::Line(s) => s.base_url.clone(),
            ChannelSettings::Webhook(s) => s.url.clone(),
        }
    }

    /// The contact fields the settings name; the API checks them against the schema.
    pub fn contact_fields(&self) -> Vec<(&'static str, &str)> {
        match self {
            ChannelSettings::Sms(s) => vec![("phone_field", &s.phone_field)],
            ChannelSettings::Line(s) => vec![("user_field", &s.user_field)],
            ChannelSettings::Webhook(s) => {
                s.fields.iter().map(|f| ("fields", f.as_str())).collect()
            }
        }
    }

    /// Shape problems, each naming its field.
    pub fn check(&self) -> Vec<SettingsError> {
        let mut errors = Vec::new();
        match self {
            ChannelSettings::Sms(s) => {
                check_url("base_url", &s.base_url, &mut errors);
                check_concurrency(s.concurrency, &mut errors);
                if !is_sid(&s.account_sid, "AC") {
                    errors.push(problem(
                        "account_sid",
                        "is AC followed by 32 letters and digits, as the provider's console shows it",
                    ));
                }
                if let Some(key) = &s.api_key_sid
                    && !is_sid(key, "SK")
                {
                    errors.push(problem(
                        "api_key_sid",
                        "is SK followed by 32 letters and digits",
                    ));
                }
                if !sms_sender_ok(&s.from) {
                    errors.push(problem(
                        "from",
                        "is a number in E.164 form (+815012345678), a messaging service (MG…) or a sender ID of up to 11 letters and digits",
                    ));
                }
                if s.country_code.is_empty()
                    || s.country_code.len() > 3
                    || !s.country_code.chars().all(|c| c.is_ascii_digit())
                {
                    errors.push(problem("country_code", "is 1 to 3 digits, such as 81"));
                }
            }
            ChannelSettings::Line(s) => {
                check_url("base_url", &s.base_url, &mut errors);
                check_concurrency(s.concurrency, &mut errors);
            }
            ChannelSettings::Webhook(s) => {
                check_url("url", &s.url, &mut errors);
                check_concurrency(s.concurrency, &mut errors);
            }
        }
        errors
    }
}

/// The JSON Schema of channel settings, for the OpenAPI document.
pub fn json_schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(ChannelSettings)).expect("a schema is JSON")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sms(overrides: serde_json::Value) -> ChannelSettings {
        let mut value = json!({
            "channel": "sms",
            "account_sid": format!("AC{}", "a1".repeat(16)),
            "from": "+815012345678"
        });
        for (k, v) in overrides.as_object().unwrap() {
            value[k] = v.clone();
        }
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn defaults_point_at_the_real_providers() {
        let ChannelSettings::Sms(s) = sms(json!({})) else {
            panic!()
        };
        assert_eq!(s.base_url, "https://api.twilio.com");
        assert_eq!(
            (s.phone_field.as_str(), s.country_code.as_str()),
            ("mobile_phone", "81")
        );
        let line: ChannelSettings = serde_json::from_value(json!({"channel": "line"})).unwrap();
        assert!(line.check().is_empty());
        assert_eq!(line.contact_fields(), vec![("user_field", "line_user_id")]);
    }

    #[test]
    fn credentials_go_over_https_except_to_this_machine() {
        assert!(
            sms(json!({"base_url": "http://127.0.0.1:9000"}))
                .check()
                .is_empty()
        );
        for bad in [
            "http://sms.example.com",
            "ftp://sms.example.com",
            "https://user:pw@sms.example.com",
            "sms.example.com",
            "http://localhost.example.com",
        ] {
            let found = sms(json!({"base_url": bad})).check();
            assert_eq!(found.len(), 1, "{bad}: {found:?}");
            assert_eq!(found[0].at, "base_url");
        }
    }

    #[test]
    fn sids_senders_and_country_codes_are_checked() {
        let found = sms(json!({"account_sid": "AC123", "from": "0312345678", "country_code": "+81", "concurrency": 0}))
            .check();
        let at: Vec<_> = found.iter().map(|e| e.at.as_str()).collect();
        assert_eq!(
            at,
            vec!["concurrency", "account_sid", "from", "country_code"]
        );
        assert!(sms(json!({"from": "KANKO"})).check().is_empty());
        assert!(
            sms(json!({"from": format!("MG{}", "0".repeat(32))}))
                .check()
                .is_empty()
        );
    }

    #[test]
    fn unknown_settings_are_refused() {
        let err =
            serde_json::from_value::<ChannelSettings>(json!({"channel": "line", "token": "x"}))
                .unwrap_err();
        assert!(err.to_string().contains("token"), "{err}");
    }
}
