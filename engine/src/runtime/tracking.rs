//! What the tracking links report (MA-6): a delivery opened, a link in it clicked, or the
//! contact unsubscribing from its channel. Opens and clicks become events like any other, so
//! waiting runs move on at once; an unsubscribe withdraws the contact's consent to the channel
//! (later sends to it are suppressed) and is an event too. A provider's delivery report (an SMS
//! delivered or not) is a `delivered` or `bounced` event.

use serde_json::json;
use sha2::{Digest, Sha256};
use tabiji_model::flow::{CONTACTS, Channel};
use tabiji_storage::Principal;
use tabiji_storage::journeys;

use super::deliver::consent_field;
use super::{IncomingEvent, Result, Runtime};

/// One use of a tracking link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkUse {
    Opened,
    Clicked {
        url: String,
    },
    Unsubscribed,
    /// A provider's report on the delivery: Twilio's `MessageStatus` (`delivered`,
    /// `undelivered`, `failed`, or an interim `queued`/`sent`) and `ErrorCode`.
    Status {
        status: String,
        error_code: Option<String>,
    },
}

impl Runtime {
    /// Records a use of a (verified) link of `delivery_id` sent to `contact_id`. Returns
    /// whether there is such a delivery to that contact. Repeated opens and clicks of one link
    /// count once.
    pub async fn track(&self, delivery_id: i64, contact_id: i64, what: LinkUse) -> Result<bool> {
        let Some(delivery) = journeys::delivery(&self.store.db().conn, delivery_id).await? else {
            return Ok(false);
        };
        if delivery.contact_id != contact_id {
            return Ok(false);
        }
        let event = |key: String, name: &str, properties| IncomingEvent {
            event_key: key,
            contact_id,
            name: name.to_string(),
            delivery_id: Some(delivery_id),
            properties,
            occurred_at: None,
        };
        let opened = event(format!("opened-{delivery_id}"), "opened", json!({}));
        let events = match what {
            LinkUse::Status { status, error_code } => match status.as_str() {
                "delivered" => vec![event(
                    format!("delivered-{delivery_id}"),
                    "delivered",
                    json!({"channel": delivery.channel}),
                )],
                "undelivered" | "failed" => vec![event(
                    format!("bounced-{delivery_id}"),
                    "bounced",
                    json!({
                        "channel": delivery.channel,
                        "reason": match &error_code {
                            Some(code) => format!("the provider reports it {status} (error {code})"),
                            None => format!("the provider reports it {status}"),
                        },
                    }),
                )],
                // Interim states (queued, sending, sent) say nothing yet.
                _ => Vec::new(),
            },
            LinkUse::Opened => vec![opened],
            LinkUse::Clicked { url } => {
                let link = hex::encode(&Sha256::digest(url.as_bytes())[..8]);
                // A click is also an open: many mail clients block the pixel.
                vec![
                    opened,
                    event(
                        format!("clicked-{delivery_id}-{link}"),
                        "clicked",
                        json!({"url": url}),
                    ),
                ]
            }
            LinkUse::Unsubscribed => {
                if let Some(field) = Channel::parse(&delivery.channel).and_then(consent_field) {
                    let real = self.real_contacts(&[contact_id]).await?;
                    if let Some(id) = real.get(&contact_id) {
                        let mut patch = serde_json::Map::new();
                        patch.insert(field, false.into());
                        self.store
                            .update(&Principal::system(), CONTACTS, *id, &patch.into())
                            .await?;
                    }
                }
                vec![event(
                    format!("unsubscribed-{delivery_id}"),
                    "unsubscribed",
                    json!({"channel": delivery.channel}),
                )]
            }
        };
        self.ingest(events).await?;
        Ok(true)
    }
}
