//! SMS through Twilio's Messages API (`POST /2010-04-01/Accounts/{sid}/Messages.json`, form
//! encoded, HTTP basic auth), or any provider that speaks it: the base URL is a setting.
//!
//! Numbers go out in E.164 form. Twilio does not deduplicate requests, so a request that may
//! have reached it without an answer is `unknown`, never sent again.

use std::time::Instant;

use serde_json::Value as Json;
use tabiji_model::channel::{SmsSettings, sms_sender_ok};
use tabiji_model::flow::Channel;
use tabiji_model::normalize;

use crate::http::{self, Reach, refused, unanswered};
use crate::{BoxFuture, Connector, Message, Outcome};

/// The longest body Twilio accepts, in characters (it splits into segments below that).
pub const MAX_BODY_CHARS: usize = 1600;

pub struct Sms {
    settings: SmsSettings,
    auth_token: String,
    client: reqwest::Client,
}

impl std::fmt::Debug for Sms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sms")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Sms {
    pub fn new(settings: SmsSettings, auth_token: String, reach: Reach) -> Sms {
        Sms {
            settings,
            auth_token,
            client: http::client(reach),
        }
    }

    fn endpoint(&self) -> String {
        format!(
            "{}/2010-04-01/Accounts/{}/Messages.json",
            self.settings.base_url.trim_end_matches('/'),
            self.settings.account_sid
        )
    }

    async fn send_one(&self, message: &Message, deadline: Instant) -> Outcome {
        let stored = message
            .to
            .get(&self.settings.phone_field)
            .and_then(Json::as_str)
            .unwrap_or_default();
        let to = match normalize::e164(stored, &self.settings.country_code) {
            Ok(to) => to,
            Err(e) => return Outcome::Bounced(format!("{} {e}", self.settings.phone_field)),
        };
        let Some(content) = &message.content else {
            return Outcome::Permanent("the message was not rendered".into());
        };
        let body = content.text.trim();
        let chars = body.chars().count();
        if chars > MAX_BODY_CHARS {
            return Outcome::Permanent(format!(
                "the text is {chars} characters; an SMS takes at most {MAX_BODY_CHARS}"
            ));
        }
        let sender = message.sender.as_deref().unwrap_or(&self.settings.from);
        if !sms_sender_ok(sender) {
            return Outcome::Permanent(format!(
                "the send node's sender {sender:?} is not an SMS sender (a number in E.164 form, a messaging service MG… or a sender ID of up to 11 letters and digits)"
            ));
        }
        let from_field = if sender.starts_with("MG") && !sender.starts_with('+') {
            "MessagingServiceSid"
        } else {
            "From"
        };
        let mut form = vec![("To", to.as_str()), (from_field, sender), ("Body", body)];
        if let Some(url) = &message.status_url {
            form.push(("StatusCallback", url));
        }
        let user = self
            .settings
            .api_key_sid
            .as_deref()
            .unwrap_or(&self.settings.account_sid);
        let sent = self
            .client
            .post(self.endpoint())
            .basic_auth(user, Some(&self.auth_token))
            .form(&form)
            .timeout(http::time_left(deadline))
            .send()
            .await;
        let response = match sent {
            Ok(response) => response,
            Err(e) => return unanswered("the SMS provider", &e, false),
        };
        let status = response.status();
        let answer: Json =
            serde_json::from_slice(&http::read_limited(response).await).unwrap_or(Json::Null);
        if status.is_success() {
            return match answer.get("sid").and_then(Json::as_str) {
                Some(sid) => Outcome::Accepted {
                    provider_ref: sid.to_string(),
                },
                None => Outcome::Unknown(format!(
                    "the SMS provider answered {status} without a message sid"
                )),
            };
        }
        // Twilio's error body: {"code": 21211, "message": "The 'To' number … is not valid", …}
        let detail = match (
            answer.get("code"),
            answer.get("message").and_then(Json::as_str),
        ) {
            (Some(code), Some(text)) => format!("{text} (error {code})"),
            (None, Some(text)) => text.to_string(),
            _ => "no reason given".into(),
        };
        // 21211 not a valid number, 21614 not a mobile number, 21610 the recipient replied STOP.
        let code = answer.get("code").and_then(Json::as_i64);
        if matches!(code, Some(21211 | 21614 | 21610)) {
            return Outcome::Bounced(format!("the SMS provider refused the number: {detail}"));
        }
        refused("the SMS provider", status, &detail)
    }
}

impl Connector for Sms {
    fn channel(&self) -> Channel {
        Channel::Sms
    }

    fn required_fields(&self) -> Vec<String> {
        vec![self.settings.phone_field.clone()]
    }

    fn suppression_key(&self, address: &str) -> String {
        normalize::e164(address, &self.settings.country_code)
            .unwrap_or_else(|_| address.to_string())
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
    use serde_json::json;
    use tabiji_model::content::Rendered;
    use wiremock::matchers::{basic_auth, body_string_contains, header, method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    const ACCOUNT: &str = "AC0123456789abcdef0123456789abcdef";

    fn settings(base_url: &str) -> SmsSettings {
        serde_json::from_value(json!({
            "base_url": base_url, "account_sid": ACCOUNT, "from": "+815012345678"
        }))
        .unwrap()
    }

    fn message(id: i64, phone: &str, text: &str) -> Message {
        Message {
            delivery_id: id,
            idempotency_key: format!("1:send:{id}"),
            contact_id: id,
            template: "t".into(),
            sender: None,
            to: json!({"mobile_phone": phone}).as_object().unwrap().clone(),
            content: Some(Rendered {
                channel: Channel::Sms,
                subject: String::new(),
                preheader: String::new(),
                html: String::new(),
                text: text.into(),
                flex: None,
            }),
            unsubscribe_url: None,
            status_url: None,
        }
    }

    #[tokio::test]
    async fn messages_post_to_twilios_api_with_e164_numbers() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path(format!(
                "/2010-04-01/Accounts/{ACCOUNT}/Messages.json"
            )))
            .and(basic_auth(ACCOUNT, "secret-token"))
            .and(header("content-type", "application/x-www-form-urlencoded"))
            .and(body_string_contains("To=%2B819012345678"))
            .and(body_string_contains("From=%2B815012345678"))
            .and(body_string_contains(
                "Body=%E8%8A%B1%E5%AD%90%E6%A7%98+%E7%B4%85%E8%91%89",
            ))
            .and(body_string_contains(
                "StatusCallback=https%3A%2F%2Fcrm.example%2Ft%2Fs%2F1%2F1%2Fabc",
            ))
            .respond_with(
                ResponseTemplate::new(201)
                    .set_body_json(json!({"sid": "SM0001", "status": "queued"})),
            )
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(body_string_contains("To=%2B819000000000"))
            .respond_with(ResponseTemplate::new(400).set_body_json(json!({
                "code": 21211, "message": "The 'To' number +819000000000 is not a valid phone number.",
                "status": 400
            })))
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(body_string_contains("To=%2B819011111111"))
            .respond_with(ResponseTemplate::new(429).set_body_json(json!({
                "code": 20429, "message": "Too Many Requests", "status": 429
            })))
            .mount(&server)
            .await;

        let sms = Sms::new(
            settings(&server.uri()),
            "secret-token".into(),
            Reach::Anywhere,
        );
        let outcomes = sms
            .send_batch(
                &[
                    Message {
                        status_url: Some("https://crm.example/t/s/1/1/abc".into()),
                        ..message(1, "090-1234-5678", "花子様 紅葉")
                    },
                    message(2, "090-0000-0000", "x"),
                    message(3, "090-1111-1111", "x"),
                    message(4, "12", "x"),
                    message(5, "090-1234-5678", &"あ".repeat(MAX_BODY_CHARS + 1)),
                ],
                soon(),
            )
            .await;
        assert_eq!(
            outcomes[0],
            Outcome::Accepted {
                provider_ref: "SM0001".into()
            }
        );
        assert!(
            matches!(&outcomes[1], Outcome::Bounced(why) if why.contains("21211") && why.contains("not a valid phone number")),
            "{:?}",
            outcomes[1]
        );
        assert!(matches!(&outcomes[2], Outcome::Transient(why) if why.contains("429")));
        assert!(
            matches!(&outcomes[3], Outcome::Bounced(why) if why.contains("mobile_phone") && !why.contains("12")),
            "{:?}",
            outcomes[3]
        );
        assert!(matches!(&outcomes[4], Outcome::Permanent(why) if why.contains("1601")));
    }

    #[tokio::test]
    async fn nothing_starts_after_the_deadline_and_senders_are_checked() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(201).set_body_json(json!({"sid": "SM1"})))
            .expect(0)
            .mount(&server)
            .await;
        let sms = Sms::new(settings(&server.uri()), "t".into(), Reach::Anywhere);
        let late = sms
            .send_batch(
                &[message(1, "09012345678", "x")],
                std::time::Instant::now() - std::time::Duration::from_millis(1),
            )
            .await;
        assert_eq!(late, vec![http::not_started()]);
        let mut spoofed = message(2, "09012345678", "x");
        spoofed.sender = Some("観光協会 <news@kanko.example.jp>".into());
        let outcomes = sms.send_batch(&[spoofed], soon()).await;
        assert!(
            matches!(&outcomes[0], Outcome::Permanent(why) if why.contains("not an SMS sender"))
        );
        assert_eq!(sms.suppression_key("090-1234-5678"), "+819012345678");
    }

    #[tokio::test]
    async fn a_provider_that_cannot_be_reached_is_tried_again_and_never_shows_the_token() {
        let unused = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = unused.local_addr().unwrap().port();
        drop(unused);
        let sms = Sms::new(
            settings(&format!("http://127.0.0.1:{port}")),
            "secret-token".into(),
            Reach::Anywhere,
        );
        let outcomes = sms
            .send_batch(&[message(1, "09012345678", "x")], soon())
            .await;
        match &outcomes[0] {
            Outcome::Transient(why) => {
                assert!(
                    !why.contains("secret-token") && !why.contains(ACCOUNT),
                    "{why}"
                )
            }
            other => panic!("{other:?}"),
        }
        assert!(!format!("{sms:?}").contains("secret-token"));
    }
}
