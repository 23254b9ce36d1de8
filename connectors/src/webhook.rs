//! The outgoing webhook channel: each message POSTed as JSON to the configured URL, signed so
//! the receiver can tell it came from tabiji and was not replayed.
//!
//! `Tabiji-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>" under the signing
//! secret>`; `Idempotency-Key` is the same on every attempt of one delivery, which receivers
//! use to take a retried message once (so a request that timed out is simply sent again).

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use serde_json::{Value as Json, json};
use sha2::Sha256;
use tabiji_model::channel::WebhookSettings;
use tabiji_model::flow::Channel;

use crate::http::{self, Reach, refused, unanswered};
use crate::{BoxFuture, Connector, Message, Outcome};

pub const SIGNATURE_HEADER: &str = "Tabiji-Signature";

/// The signature header's value for `body` sent at `unix_seconds`.
pub fn signature(secret: &str, unix_seconds: u64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(format!("{unix_seconds}.").as_bytes());
    mac.update(body);
    let digest: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("t={unix_seconds},v1={digest}")
}

pub struct Webhook {
    settings: WebhookSettings,
    secret: String,
    client: reqwest::Client,
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhook")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Webhook {
    pub fn new(settings: WebhookSettings, secret: String, reach: Reach) -> Webhook {
        Webhook {
            settings,
            secret,
            client: http::client(reach),
        }
    }

    async fn send_one(&self, message: &Message, deadline: Instant) -> Outcome {
        let text = message
            .content
            .as_ref()
            .map(|c| c.text.as_str())
            .unwrap_or_default();
        let body = json!({
            "delivery_id": message.delivery_id,
            "idempotency_key": message.idempotency_key,
            "contact_id": message.contact_id,
            "template": message.template,
            "sender": message.sender,
            "contact": message.to,
            "text": text,
        })
        .to_string();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        let sent = self
            .client
            .post(&self.settings.url)
            .header("content-type", "application/json")
            .header("Idempotency-Key", &message.idempotency_key)
            .header(
                SIGNATURE_HEADER,
                signature(&self.secret, now, body.as_bytes()),
            )
            .body(body)
            .timeout(http::time_left(deadline))
            .send()
            .await;
        let response = match sent {
            Ok(response) => response,
            Err(e) => return unanswered("the webhook receiver", &e, true),
        };
        let status = response.status();
        if status.is_success() {
            let reference = response
                .headers()
                .get("x-request-id")
                .and_then(|v| v.to_str().ok())
                .map_or_else(|| status.as_u16().to_string(), str::to_string);
            return Outcome::Accepted {
                provider_ref: reference,
            };
        }
        let detail = String::from_utf8_lossy(&http::read_limited(response).await).into_owned();
        let detail = match serde_json::from_str::<Json>(&detail) {
            Ok(Json::Object(o)) => o
                .get("error")
                .or_else(|| o.get("message"))
                .and_then(Json::as_str)
                .map_or(detail.clone(), str::to_string),
            _ => detail,
        };
        refused("the webhook receiver", status, &detail)
    }
}

impl Connector for Webhook {
    fn channel(&self) -> Channel {
        Channel::Webhook
    }

    fn required_fields(&self) -> Vec<String> {
        self.settings.fields.clone()
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
    use wiremock::matchers::{header, method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    #[test]
    fn the_signature_covers_time_and_body() {
        let a = signature("s3cret", 1_700_000_000, b"{}");
        assert!(a.starts_with("t=1700000000,v1="));
        assert_eq!(a.len(), "t=1700000000,v1=".len() + 64);
        assert_ne!(a, signature("s3cret", 1_700_000_001, b"{}"));
        assert_ne!(a, signature("s3cret", 1_700_000_000, b"{ }"));
        assert_ne!(a, signature("other", 1_700_000_000, b"{}"));
    }

    #[tokio::test]
    async fn each_message_is_posted_signed_with_only_the_chosen_fields() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/hooks/tabiji"))
            .and(header("idempotency-key", "3:notify:0"))
            .respond_with(ResponseTemplate::new(202).insert_header("x-request-id", "r-1"))
            .expect(1)
            .mount(&server)
            .await;
        let hook = Webhook::new(
            serde_json::from_value(
                json!({"url": format!("{}/hooks/tabiji", server.uri()), "fields": ["email"]}),
            )
            .unwrap(),
            "s3cret".into(),
            Reach::Anywhere,
        );
        assert_eq!(hook.required_fields(), vec!["email".to_string()]);
        let message = Message {
            delivery_id: 9,
            idempotency_key: "3:notify:0".into(),
            contact_id: 4,
            template: "notify".into(),
            sender: None,
            to: json!({"email": "hanako@example.jp"})
                .as_object()
                .unwrap()
                .clone(),
            content: Some(Rendered {
                channel: Channel::Webhook,
                subject: String::new(),
                preheader: String::new(),
                html: String::new(),
                text: "花子様がご来訪".into(),
                flex: None,
            }),
            unsubscribe_url: None,
            status_url: None,
        };
        let outcomes = hook
            .send_batch(std::slice::from_ref(&message), soon())
            .await;
        assert_eq!(
            outcomes,
            vec![Outcome::Accepted {
                provider_ref: "r-1".into()
            }]
        );
        let received = &server.received_requests().await.unwrap()[0];
        let body: Json = serde_json::from_slice(&received.body).unwrap();
        assert_eq!(
            body,
            json!({"delivery_id": 9, "idempotency_key": "3:notify:0", "contact_id": 4,
                "template": "notify", "sender": null, "contact": {"email": "hanako@example.jp"},
                "text": "花子様がご来訪"})
        );
        let signed = received.headers[SIGNATURE_HEADER].to_str().unwrap();
        let t: u64 = signed[2..signed.find(',').unwrap()].parse().unwrap();
        assert_eq!(signed, signature("s3cret", t, &received.body));
    }

    #[tokio::test]
    async fn a_receiver_that_is_gone_ends_the_delivery() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(
                ResponseTemplate::new(410).set_body_json(json!({"error": "unknown hook"})),
            )
            .mount(&server)
            .await;
        let hook = Webhook::new(
            serde_json::from_value(json!({"url": server.uri()})).unwrap(),
            "s".into(),
            Reach::Anywhere,
        );
        let message = Message {
            delivery_id: 1,
            idempotency_key: "k".into(),
            contact_id: 1,
            template: "t".into(),
            sender: None,
            to: Default::default(),
            content: None,
            unsubscribe_url: None,
            status_url: None,
        };
        let outcomes = hook.send_batch(&[message], soon()).await;
        assert!(
            matches!(&outcomes[0], Outcome::Permanent(why) if why.contains("410") && why.contains("unknown hook")),
            "{:?}",
            outcomes[0]
        );
    }
}
