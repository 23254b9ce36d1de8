//! Channels behind one trait. The engine hands a connector a batch of messages it has already
//! recorded in the outbox; the connector says, per message, whether the provider accepted it
//! or failed transiently (retry later) or permanently (give up, with the reason).
//!
//! # Layout
//! - this file: [`Connector`], [`Message`], [`Outcome`] and the [`Registry`] of connectors by
//!   channel.
//! - [`recording`]: the `test` channel, which records what it was given (to a file when asked)
//!   instead of sending it.
//! - [`dkim`]: DKIM signatures (relaxed/relaxed, RSA-SHA256 with ring).
//! - [`smtp`]: e-mail through the operator's SMTP relay, DKIM-signed; the DNS records to
//!   publish for the sending domain.
//! - [`http`]: what the HTTP channels share: bounded concurrency, answers read as outcomes.
//! - [`sms`]: SMS through Twilio's Messages API or a compatible provider.
//! - [`line`]: LINE Messaging API push messages, text or flex.
//! - [`webhook`]: each message POSTed as signed JSON to a URL.
//! - [`sftp`]: partner files over SFTP: pulled for import flows, pushed by scheduled exports.
//! - [`http_pull`]: a partner's file downloaded over HTTP(S) for import flows.

pub mod dkim;
pub mod http;
pub mod http_pull;
pub mod line;
pub mod recording;
pub mod sftp;
pub mod sms;
pub mod smtp;
pub mod webhook;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;
use serde_json::{Map, Value as Json};
use tabiji_model::content::Rendered;
use tabiji_model::flow::Channel;

pub use recording::Recording;

/// A future a connector returns; boxed so connectors can sit behind `dyn`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One message to deliver.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Message {
    pub delivery_id: i64,
    /// The same for every attempt of one delivery: providers that deduplicate use it.
    pub idempotency_key: String,
    pub contact_id: i64,
    pub template: String,
    pub sender: Option<String>,
    /// The contact fields the channel requires ([`Connector::required_fields`]), and no others.
    pub to: Map<String, Json>,
    /// The template rendered for the contact; `None` only for connectors that do not ask for
    /// it ([`Connector::needs_content`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<Rendered>,
    /// The contact's one-click unsubscribe link for this message (e-mail puts it in
    /// `List-Unsubscribe`); `None` when tracking is off.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unsubscribe_url: Option<String>,
    /// Where the provider may report whether the message was delivered (SMS status
    /// callbacks); `None` when tracking is off.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_url: Option<String>,
}

/// What the provider said about one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Accepted {
        provider_ref: String,
    },
    /// Worth trying again later (timeouts, rate limits, 5xx).
    Transient(String),
    /// Trying again will not help (refused content, a message the channel cannot carry).
    Permanent(String),
    /// The provider refused the address itself (no such mailbox, not a valid number): the
    /// delivery ends and the address goes on the suppression list, so it is not tried again.
    Bounced(String),
    /// The provider may or may not have taken it (the connection failed mid-send): not
    /// resent, so it is never delivered twice; an operator decides.
    Unknown(String),
}

pub trait Connector: Send + Sync {
    fn channel(&self) -> Channel;
    /// PT-4: the contact fields this channel needs to deliver; the engine reads only these.
    fn required_fields(&self) -> Vec<String>;
    /// Whether messages must come rendered. Only a recording channel standing in for a
    /// provider in tests may go without.
    fn needs_content(&self) -> bool {
        true
    }
    /// The form of an address (the first required field's value) the suppression list keeps:
    /// the same address however it was typed.
    fn suppression_key(&self, address: &str) -> String {
        address.to_string()
    }
    /// The most messages one [`Connector::send_batch`] call takes.
    fn max_batch(&self) -> usize;
    /// Delivers a batch; the outcomes are in the order of `batch`. Every answer is in by
    /// `deadline`: a message not started by then is [`Outcome::Transient`] (tried in a later
    /// round), one started is cut off there.
    fn send_batch<'a>(
        &'a self,
        batch: &'a [Message],
        deadline: Instant,
    ) -> BoxFuture<'a, Vec<Outcome>>;
}

/// The connectors a worker can send through, by channel.
#[derive(Clone, Default)]
pub struct Registry {
    by_channel: HashMap<Channel, Arc<dyn Connector>>,
}

impl Registry {
    pub fn new() -> Self {
        Registry::default()
    }

    pub fn with(mut self, connector: Arc<dyn Connector>) -> Self {
        self.by_channel.insert(connector.channel(), connector);
        self
    }

    pub fn get(&self, channel: Channel) -> Option<&Arc<dyn Connector>> {
        self.by_channel.get(&channel)
    }
}
