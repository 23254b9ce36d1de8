//! LINE Messaging API push messages (`POST /v2/bot/message/push`, bearer channel access token)
//! to the contact's LINE user ID: a text message, or a flex message with its alternative text.
//!
//! Every attempt of one delivery carries the same `X-Line-Retry-Key`, so LINE accepts it once;
//! a retry LINE has already accepted answers 409 with the original request's id, which counts
//! as sent.

use std::time::Instant;

use serde_json::{Value as Json, json};
use sha2::{Digest, Sha256};
use tabiji_model::channel::LineSettings;
use tabiji_model::content::{LINE_ALT_TEXT_CHARS, LINE_TEXT_CHARS};
use tabiji_model::flow::Channel;

use crate::http::{self, Reach, refused, unanswered};
use crate::{BoxFuture, Connector, Message, Outcome};

pub struct Line {
    settings: LineSettings,
    access_token: String,
    client: reqwest::Client,
}

impl std::fmt::Debug for Line {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Line")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// LINE's retry key is a UUID; this one is derived from the delivery's idempotency key so
/// every attempt (from any worker) sends the same.
pub fn retry_key(idempotency_key: &str) -> String {
    let mut bytes: [u8; 16] = Sha256::digest(idempotency_key.as_bytes())[..16]
        .try_into()
        .expect("16 bytes");
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

fn is_user_id(id: &str) -> bool {
    id.len() == 33 && id.starts_with('U') && id[1..].chars().all(|c| c.is_ascii_hexdigit())
}

impl Line {
    pub fn new(settings: LineSettings, access_token: String, reach: Reach) -> Line {
        Line {
            settings,
            access_token,
            client: http::client(reach),
        }
    }

    /// The message object LINE takes, or why this content cannot be one.
    fn message_object(message: &Message) -> Result<Json, String> {
        let content = message
            .content
            .as_ref()
            .ok_or("the message was not rendered")?;
        let text = content.text.trim();
        let chars = text.chars().count();
        match &content.flex {
            Some(flex) => {
                if chars > LINE_ALT_TEXT_CHARS {
                    return Err(format!(
                        "the alternative text is {chars} characters; LINE takes at most {LINE_ALT_TEXT_CHARS}"
                    ));
                }
                Ok(json!({"type": "flex", "altText": text, "contents": flex}))
            }
            None => {
                if chars > LINE_TEXT_CHARS {
                    return Err(format!(
                        "the text is {chars} characters; LINE takes at most {LINE_TEXT_CHARS}"
                    ));
                }
                Ok(json!({"type": "text", "text": text}))
            }
        }
    }

    async fn send_one(&self, message: &Message, deadline: Instant) -> Outcome {
        let user = message
            .to
            .get(&self.settings.user_field)
            .and_then(Json::as_str)
            .unwrap_or_default();
        if !is_user_id(user) {
            return Outcome::Permanent(format!(
                "{} {user:?} is not a LINE user ID (U and 32 hex digits)",
                self.settings.user_field
            ));
        }
        let object = match Line::message_object(message) {
            Ok(object) => object,
            Err(why) => return Outcome::Permanent(why),
        };
        let sent = self
            .client
            .post(format!(
                "{}/v2/bot/message/push",
                self.settings.base_url.trim_end_matches('/')
            ))
            .bearer_auth(&self.access_token)
            .header("X-Line-Retry-Key", retry_key(&message.idempotency_key))
            .json(&json!({"to": user, "messages": [object]}))
            .timeout(http::time_left(deadline))
            .send()
            .await;
        let response = match sent {
            Ok(response) => response,
            Err(e) => return unanswered("LINE", &e, true),
        };
        let status = response.status();
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let request_id = header("x-line-request-id");
        let accepted_id = header("x-line-accepted-request-id");
        let answer: Json =
            serde_json::from_slice(&http::read_limited(response).await).unwrap_or(Json::Null);
        if status.is_success() {
            let sent_id = answer
                .pointer("/sentMessages/0/id")
                .and_then(Json::as_str)
                .map(str::to_string);
            return Outcome::Accepted {
                provider_ref: sent_id.or(request_id).unwrap_or_default(),
            };
        }
        if status == reqwest::StatusCode::CONFLICT
            && let Some(original) = accepted_id
        {
            return Outcome::Accepted {
                provider_ref: original,
            };
        }
        // LINE's error body: {"message": "The request body has 1 error(s)", "details": [{"message": "…", "property": "…"}]}
        let mut detail = answer
            .get("message")
            .and_then(Json::as_str)
            .unwrap_or("no reason given")
            .to_string();
        if let Some(details) = answer.get("details").and_then(Json::as_array) {
            for d in details {
                let property = d.get("property").and_then(Json::as_str).unwrap_or("");
                let text = d.get("message").and_then(Json::as_str).unwrap_or("");
                detail.push_str(&format!("; {property}: {text}"));
            }
        }
        refused("LINE", status, &detail)
    }
}

impl Connector for Line {
    fn channel(&self) -> Channel {
        Channel::Line
    }

    fn required_fields(&self) -> Vec<String> {
        vec![self.settings.user_field.clone()]
    }

    fn max_batch(&self) -> usize {
        100
    }

    fn send_batch<'a>(
        &'a self,
        batch: &'a [Message],
        deadline: Instant,
    ) -> BoxFuture<'a, Vec<Outcome>> {
        Box::pin(http::in_order(
            batch
                .iter()
                .map(move |m| move || self.send_one(m, deadline)),
            self.settings.concurrency,
            deadline,
        ))
    }
}

#[cfg(test)]
mod tests {
    fn soon() -> std::time::Instant {
        std::time::Instant::now() + std::time::Duration::from_secs(30)
    }

    use super::*;
    use tabiji_model::content::Rendered;
    use wiremock::matchers::{body_json, header, method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    const HANAKO: &str = "U4af4980629a1b2c3d4e5f60718293a4b";

    fn message(id: i64, user: &str, text: &str, flex: Option<Json>) -> Message {
        Message {
            delivery_id: id,
            idempotency_key: format!("7:send:{id}"),
            contact_id: id,
            template: "t".into(),
            sender: None,
            to: json!({"line_user_id": user}).as_object().unwrap().clone(),
            content: Some(Rendered {
                channel: Channel::Line,
                subject: String::new(),
                preheader: String::new(),
                html: String::new(),
                text: text.into(),
                flex,
            }),
            unsubscribe_url: None,
            status_url: None,
        }
    }

    fn line(uri: &str) -> Line {
        Line::new(
            serde_json::from_value(json!({"base_url": uri})).unwrap(),
            "channel-token".into(),
            Reach::Anywhere,
        )
    }

    #[test]
    fn retry_keys_are_uuids_fixed_per_delivery() {
        let key = retry_key("7:send:1");
        assert_eq!(key, retry_key("7:send:1"));
        assert_ne!(key, retry_key("7:send:2"));
        let groups: Vec<usize> = key.split('-').map(str::len).collect();
        assert_eq!(groups, vec![8, 4, 4, 4, 12]);
        assert_eq!(&key[14..15], "4");
    }

    #[tokio::test]
    async fn text_and_flex_messages_are_pushed_as_line_documents_them() {
        let server = MockServer::start().await;
        let bubble = json!({"type": "bubble", "body": {"type": "box", "layout": "vertical",
            "contents": [{"type": "text", "text": "花子様"}]}});
        Mock::given(method("POST"))
            .and(path("/v2/bot/message/push"))
            .and(header("authorization", "Bearer channel-token"))
            .and(header("x-line-retry-key", retry_key("7:send:1").as_str()))
            .and(body_json(
                json!({"to": HANAKO, "messages": [{"type": "text", "text": "花子様、秋のご案内"}]}),
            ))
            .respond_with(ResponseTemplate::new(200).set_body_json(
                json!({"sentMessages": [{"id": "461230966842064897", "quoteToken": "q"}]}),
            ))
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(path("/v2/bot/message/push"))
            .and(body_json(json!({"to": HANAKO, "messages": [
                {"type": "flex", "altText": "秋のご案内", "contents": bubble}
            ]})))
            .respond_with(
                ResponseTemplate::new(409)
                    .insert_header("x-line-accepted-request-id", "accepted-before")
                    .set_body_json(json!({"message": "The retry key is already accepted"})),
            )
            .expect(1)
            .mount(&server)
            .await;
        let outcomes = line(&server.uri())
            .send_batch(
                &[
                    message(1, HANAKO, "花子様、秋のご案内", None),
                    message(2, HANAKO, "秋のご案内", Some(bubble.clone())),
                    message(3, "not-a-user", "x", None),
                    message(4, HANAKO, &"あ".repeat(401), Some(bubble.clone())),
                ],
                soon(),
            )
            .await;
        assert_eq!(
            outcomes[..2],
            [
                Outcome::Accepted {
                    provider_ref: "461230966842064897".into()
                },
                Outcome::Accepted {
                    provider_ref: "accepted-before".into()
                }
            ]
        );
        assert!(matches!(&outcomes[2], Outcome::Permanent(why) if why.contains("line_user_id")));
        assert!(matches!(&outcomes[3], Outcome::Permanent(why) if why.contains("401")));
    }

    #[tokio::test]
    async fn refusals_carry_lines_details() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(400).set_body_json(json!({
                "message": "The request body has 1 error(s)",
                "details": [{"message": "must be specified", "property": "messages[0].text"}]
            })))
            .mount(&server)
            .await;
        let outcomes = line(&server.uri())
            .send_batch(&[message(1, HANAKO, "x", None)], soon())
            .await;
        assert!(
            matches!(&outcomes[0], Outcome::Permanent(why) if why.contains("messages[0].text: must be specified")),
            "{:?}",
            outcomes[0]
        );
    }
}
