//! The outbox: pending deliveries claimed (`sending`, with a lease), handed to their channel's
//! connector, and their outcome recorded. Addresses on the suppression list are not sent to;
//! an address a provider refuses goes on it, with a `bounced` event. A delivery whose worker died while the provider was
//! being asked is declared `unknown` when its lease runs out: never resent silently.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use chrono::{DateTime, Duration as Span, Utc};
use serde_json::{Map, Value as Json};
use tabiji_connectors::{Connector, Message, Outcome};
use tabiji_model::flow::Channel;
use tabiji_storage::journeys::{self, DeliveryResult, DeliveryRow};
use tabiji_storage::suppressions::{self, Suppression};

use tabiji_model::FieldType;
use tabiji_model::flow::CONTACTS;

use super::{IncomingEvent, Result, Runtime, RuntimeError, millis};
use crate::personalise::UNSUBSCRIBE_PLACEHOLDER;

/// How long to wait before storing deliveries' outcomes again while the database is away.
const OUTCOME_RETRY: Duration = Duration::from_millis(500);

/// When deliveries a round claimed but never sent (the database went away part-way) are
/// tried again.
const RELEASED_RETRY: Duration = Duration::from_secs(1);

/// Why a delivery was not attempted, or how it ended.
fn result(d: &DeliveryRow, status: &'static str, error: impl Into<String>) -> DeliveryResult {
    DeliveryResult {
        id: d.id,
        status,
        provider_ref: None,
        error: Some(error.into()),
        next_attempt_at: d.next_attempt_at,
    }
}

/// The contact field that records consent to a channel: marketing messages go only to
/// contacts who agreed (Japan's Act on Specified Electronic Mail is opt-in).
pub fn consent_field(channel: Channel) -> Option<String> {
    match channel {
        Channel::Email | Channel::Sms | Channel::Line => {
            Some(format!("opt_in_{}", channel.as_str()))
        }
        Channel::Webhook | Channel::Test => None,
    }
}

fn is_blank(value: Option<&Json>) -> bool {
    match value {
        None | Some(Json::Null) => true,
        Some(Json::String(s)) => s.trim().is_empty(),
        Some(_) => false,
    }
}

impl Runtime {
    /// Declares deliveries whose worker stopped mid-send `unknown`. Returns how many.
    pub async fn expire_step(&self) -> Result<u64> {
        Ok(journeys::expire_sending(&self.store.db().conn, millis(self.now())).await?)
    }

    /// Claims one batch of due deliveries of active flows and sends them. Returns how many
    /// were handled.
    pub async fn deliver_step(&self) -> Result<usize> {
        let conn = &self.store.db().conn;
        let now = self.now();
        let live = journeys::live_flows(conn).await?;
        let active: Vec<i64> = live.iter().filter(|f| f.active).map(|f| f.id).collect();
        let lease = self.config.lease.as_millis() as i64;
        let lease_ends = Instant::now() + self.config.lease;
        let claimed = journeys::claim_deliveries(
            conn,
            &active,
            millis(now),
            lease,
            self.config.delivery_batch,
        )
        .await?;
        if claimed.is_empty() {
            return Ok(0);
        }
        let handled = claimed.len();
        let versions: HashMap<i64, i32> = live.iter().map(|f| (f.id, f.version)).collect();
        let mut results = Vec::with_capacity(claimed.len());
        // Addresses the providers refused in this round: suppressed, and a `bounced` event.
        let mut bounces: Vec<(String, DeliveryRow, String, String)> = Vec::new();
        let rows = claimed.clone();
        let round = self
            .send_claimed(claimed, &versions, now, &mut results, &mut bounces)
            .await;
        if let Err(e) = &round {
            // The database went away part-way. What a provider was asked keeps its outcome;
            // the rest was never handed to one and waits its turn again, rather than running
            // out its lease into `unknown`.
            let answered: HashSet<i64> = results.iter().map(|r| r.id).collect();
            let again = millis(self.now()) + RELEASED_RETRY.as_millis() as i64;
            for d in rows.iter().filter(|d| !answered.contains(&d.id)) {
                results.push(DeliveryResult {
                    id: d.id,
                    status: "pending",
                    provider_ref: None,
                    error: Some(format!("not sent yet: the round stopped ({e})")),
                    next_attempt_at: again,
                });
            }
        }
        {
            let mut counts = self.counters.deliveries.lock().expect("not poisoned");
            for r in &results {
                *counts.entry(r.status).or_default() += 1;
                if r.status != "sent" {
                    tracing::info!(
                        delivery_id = r.id,
                        status = r.status,
                        reason = r.error.as_deref().unwrap_or(""),
                        "delivery not sent"
                    );
                }
            }
        }
        self.record_outcomes(results, lease_ends).await?;
        round?;
        if !bounces.is_empty() {
            self.bounced(bounces).await?;
        }
        self.wrote(handled).await?;
        Ok(handled)
    }

    /// Hands claimed deliveries to their channels' connectors, pushing each one's outcome to
    /// `results` as it is known: frequency caps, consent, suppression and rendering first.
    async fn send_claimed(
        &self,
        claimed: Vec<DeliveryRow>,
        versions: &HashMap<i64, i32>,
        now: DateTime<Utc>,
        results: &mut Vec<DeliveryResult>,
        bounces: &mut Vec<(String, DeliveryRow, String, String)>,
    ) -> Result<()> {
        let conn = &self.store.db().conn;
        // Every answer is in by half the lease: one later could arrive after the delivery was
        // declared unknown. Connectors start nothing after it and cut off what is in flight.
        let deadline = Instant::now() + self.config.lease / 2;
        let grace = (self.config.lease / 4).min(Duration::from_secs(5));

        // Frequency caps count sends across all flows, so this batch's sends count too.
        let mut contacts: Vec<i64> = claimed.iter().map(|d| d.contact_id).collect();
        contacts.sort_unstable();
        contacts.dedup();
        let mut caps: HashMap<i64, (u32, u32)> = HashMap::new();
        for d in &claimed {
            if caps.contains_key(&d.flow_id) {
                continue;
            }
            let version = versions.get(&d.flow_id).copied().unwrap_or_default();
            if let Ok(flow) = self.flow(d.flow_id, version).await
                && let Some(cap) = &flow.settings.frequency_cap
            {
                caps.insert(d.flow_id, (cap.max_sends, cap.per_days));
            }
        }
        let mut sent_in: HashMap<u32, HashMap<i64, u32>> = HashMap::new();
        for &(_, days) in caps.values() {
            if let std::collections::hash_map::Entry::Vacant(slot) = sent_in.entry(days) {
                let since = millis(now - Span::days(i64::from(days)));
                slot.insert(journeys::sends_since(conn, &contacts, since).await?);
            }
        }

        let mut by_channel: HashMap<String, Vec<DeliveryRow>> = HashMap::new();
        for d in claimed {
            if let Some(&(max, days)) = caps.get(&d.flow_id) {
                let counts = sent_in.get_mut(&days).expect("counted above");
                let count = counts.entry(d.contact_id).or_default();
                if *count >= max {
                    results.push(result(
                        &d,
                        "suppressed",
                        format!("frequency cap: {max} sends per {days} days reached"),
                    ));
                    continue;
                }
                *count += 1;
            }
            by_channel.entry(d.channel.clone()).or_default().push(d);
        }

        let configured = self.configured().await?;
        for (channel, deliveries) in by_channel {
            let connector = match Channel::parse(&channel) {
                Some(c) => self.connector(&configured, c),
                None => None,
            };
            let connector = match connector {
                Some(Ok(connector)) => connector,
                // Configured but not usable (its credential cannot be opened): kept for when
                // the operator fixes it, within the attempts.
                Some(Err(why)) => {
                    for d in &deliveries {
                        results.push(self.retry_or_give_up(d, &why));
                    }
                    continue;
                }
                None => {
                    for d in &deliveries {
                        results.push(result(
                            d,
                            "dead",
                            format!("no connector is configured for the {channel} channel"),
                        ));
                    }
                    continue;
                }
            };
            let fields = connector.required_fields();
            let consent = consent_field(connector.channel());
            // A channel that sends rendered content reads every field once, for the template
            // as well as for the address and consent.
            let read = if connector.needs_content() {
                self.contact_keys().await?
            } else {
                let mut read = fields.clone();
                read.extend(consent.clone());
                read
            };
            let subjects: Vec<i64> = deliveries.iter().map(|d| d.contact_id).collect();
            let data = self.fields_of(&subjects, &read).await?;
            let mut ready = Vec::with_capacity(deliveries.len());
            for d in deliveries {
                let Some(record) = data.get(&d.contact_id) else {
                    results.push(result(&d, "suppressed", "the contact no longer exists"));
                    continue;
                };
                if let Some(consent) = &consent
                    && record.get(consent) != Some(&Json::Bool(true))
                {
                    results.push(result(
                        &d,
                        "suppressed",
                        format!("the contact has not agreed to receive {channel} ({consent} is not true)"),
                    ));
                    continue;
                }
                if let Some(missing) = fields.iter().find(|f| is_blank(record.get(*f))) {
                    results.push(result(
                        &d,
                        "suppressed",
                        format!("the contact has no {missing}"),
                    ));
                    continue;
                }
                let to: Map<String, Json> = fields
                    .iter()
                    .filter_map(|f| record.get(f).map(|v| (f.clone(), v.clone())))
                    .collect();
                let message = Message {
                    delivery_id: d.id,
                    idempotency_key: format!("{}:{}:{}", d.run_id, d.node, d.iteration),
                    contact_id: d.contact_id,
                    template: d.template.clone(),
                    sender: d.sender.clone(),
                    to,
                    content: None,
                    unsubscribe_url: None,
                    status_url: None,
                };
                ready.push((d, message));
            }
            if consent.is_some()
                && let Some(address_field) = fields.first()
            {
                ready = self
                    .without_suppressed(&channel, connector.as_ref(), address_field, ready, results)
                    .await?;
            }
            if connector.needs_content() {
                ready = self.render(ready, data, results).await?;
            }
            for chunk in ready.chunks(connector.max_batch().max(1)) {
                if Instant::now() >= deadline {
                    for (d, _) in chunk {
                        results.push(self.retry_or_give_up(
                            d,
                            "not sent: this round's time ran out before its turn",
                        ));
                    }
                    continue;
                }
                let messages: Vec<Message> = chunk.iter().map(|(_, m)| m.clone()).collect();
                // The connector keeps the deadline; the grace only catches one that does not.
                let limit = deadline.saturating_duration_since(Instant::now()) + grace;
                let outcomes =
                    tokio::time::timeout(limit, connector.send_batch(&messages, deadline)).await;
                for (i, (d, m)) in chunk.iter().enumerate() {
                    results.push(match outcomes.as_ref().map(|o| o.get(i)) {
                        Ok(Some(Outcome::Accepted { provider_ref })) => DeliveryResult {
                            id: d.id,
                            status: "sent",
                            provider_ref: Some(provider_ref.clone()),
                            error: None,
                            next_attempt_at: d.next_attempt_at,
                        },
                        Ok(Some(Outcome::Transient(why))) => self.retry_or_give_up(d, why),
                        Ok(Some(Outcome::Permanent(why))) => result(d, "dead", why.clone()),
                        Ok(Some(Outcome::Bounced(why))) => {
                            let address = fields
                                .first()
                                .and_then(|f| m.to.get(f))
                                .and_then(Json::as_str)
                                .unwrap_or_default();
                            if consent.is_some() && !address.is_empty() {
                                bounces.push((
                                    channel.clone(),
                                    d.clone(),
                                    connector.suppression_key(address),
                                    why.clone(),
                                ));
                            }
                            result(d, "dead", why.clone())
                        }
                        Ok(Some(Outcome::Unknown(why))) => result(d, "unknown", why.clone()),
                        Ok(None) => result(d, "unknown", "the connector gave no answer for it"),
                        Err(_) => result(
                            d,
                            "unknown",
                            format!(
                                "the provider did not answer within {} s; not resent",
                                limit.as_secs()
                            ),
                        ),
                    });
                }
            }
        }
        Ok(())
    }

    /// Stores what the providers answered. The messages have gone out, so a database
    /// restart must not lose the record of it: the write is tried again until the lease runs
    /// out. Past that the deliveries are declared `unknown` (and the late write leaves them
    /// so), which is the truth as far as anyone can tell.
    async fn record_outcomes(
        &self,
        results: Vec<DeliveryResult>,
        lease_ends: Instant,
    ) -> Result<()> {
        let conn = &self.store.db().conn;
        loop {
            match journeys::finish_deliveries(conn, results.clone(), millis(self.now())).await {
                Ok(()) => return Ok(()),
                Err(e)
                    if tabiji_storage::db::is_unreachable(&e)
                        && Instant::now() + OUTCOME_RETRY < lease_ends =>
                {
                    tracing::warn!(
                        error = %e,
                        deliveries = results.len(),
                        "the outcome of sent deliveries could not be stored; trying again"
                    );
                    tokio::time::sleep(OUTCOME_RETRY).await;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Leaves out messages to addresses on the channel's suppression list.
    async fn without_suppressed(
        &self,
        channel: &str,
        connector: &dyn Connector,
        address_field: &str,
        ready: Vec<(DeliveryRow, Message)>,
        results: &mut Vec<DeliveryResult>,
    ) -> Result<Vec<(DeliveryRow, Message)>> {
        let address = |m: &Message| {
            m.to.get(address_field)
                .and_then(Json::as_str)
                .map(|a| connector.suppression_key(a))
        };
        let addresses: Vec<String> = ready.iter().filter_map(|(_, m)| address(m)).collect();
        let listed = suppressions::find(&self.store.db().conn, channel, &addresses).await?;
        if listed.is_empty() {
            return Ok(ready);
        }
        let mut kept = Vec::with_capacity(ready.len());
        for (d, m) in ready {
            match address(&m).and_then(|a| listed.get(&a)) {
                Some(s) => results.push(result(
                    &d,
                    "suppressed",
                    format!(
                        "the {address_field} is on the suppression list ({} on {}: {})",
                        s.reason,
                        s.created_at.format("%Y-%m-%d"),
                        s.detail
                    ),
                )),
                None => kept.push((d, m)),
            }
        }
        Ok(kept)
    }

    /// Puts refused addresses on the suppression list and records a `bounced` event for each
    /// (waiting runs and message reports see it).
    async fn bounced(&self, bounces: Vec<(String, DeliveryRow, String, String)>) -> Result<()> {
        let now = self.now();
        let items: Vec<Suppression> = bounces
            .iter()
            .map(|(channel, d, address, why)| Suppression {
                channel: channel.clone(),
                address: address.clone(),
                reason: "bounce".into(),
                detail: why.clone(),
                contact_id: Some(d.contact_id),
                created_by: "tabiji".into(),
                created_at: now,
            })
            .collect();
        suppressions::add(&self.store.db().conn, &items).await?;
        let events = bounces
            .into_iter()
            .map(|(channel, d, _, why)| IncomingEvent {
                event_key: format!("bounced-{}", d.id),
                contact_id: d.contact_id,
                name: "bounced".into(),
                delivery_id: Some(d.id),
                properties: serde_json::json!({"channel": channel, "reason": why}),
                occurred_at: None,
            })
            .collect();
        self.ingest(events).await?;
        Ok(())
    }

    /// Every contact field a template may use (all but passwords).
    pub(super) async fn contact_keys(&self) -> Result<Vec<String>> {
        let schema = self.store.entity_schema(CONTACTS).await?;
        Ok(schema
            .fields
            .iter()
            .filter(|f| !matches!(f.ty, FieldType::Password))
            .map(|f| f.key.clone())
            .collect())
    }

    /// Renders each message's template for its contact (`records`: every field the contact
    /// has, read with the address, so templates may use any). A message whose template is missing or fails for the contact
    /// is not sent: the delivery is dead with the template's error, which names the part.
    async fn render(
        &self,
        ready: Vec<(DeliveryRow, Message)>,
        records: HashMap<i64, Map<String, Json>>,
        results: &mut Vec<DeliveryResult>,
    ) -> Result<Vec<(DeliveryRow, Message)>> {
        let library = self.content.library(&self.store).await?;
        let tracker = self.tracker().await?.cloned();
        // Rendering runs snippets: CPU work, bounded per snippet by the sandbox, kept off the
        // async workers and spread over the cores.
        let rendered = crate::personalise::on_cores(ready, move |(d, mut m)| {
            let empty = Map::new();
            let record = records.get(&d.contact_id).unwrap_or(&empty);
            let outcome = library.render(&d.template, record).map(|mut content| {
                if let Some(tracker) = &tracker {
                    let unsubscribe = tracker.unsubscribe_url(d.id, d.contact_id);
                    if !content.html.is_empty() {
                        content.html = tracker.instrument(&content.html, d.id, d.contact_id);
                    }
                    content.text = content.text.replace(UNSUBSCRIBE_PLACEHOLDER, &unsubscribe);
                    if let Some(flex) = &mut content.flex {
                        crate::personalise::replace_in_strings(
                            flex,
                            UNSUBSCRIBE_PLACEHOLDER,
                            &unsubscribe,
                        );
                    }
                    m.unsubscribe_url = Some(unsubscribe);
                    m.status_url = Some(tracker.status_url(d.id, d.contact_id));
                }
                m.content = Some(content);
            });
            (d, m, outcome)
        })
        .await
        .map_err(|e| RuntimeError::Task(format!("rendering stopped: {e}")))?;
        let mut ready = Vec::with_capacity(rendered.len());
        for (d, m, outcome) in rendered {
            match outcome {
                Ok(()) => ready.push((d, m)),
                Err(e) => results.push(result(&d, "dead", e.to_string())),
            }
        }
        Ok(ready)
    }

    fn retry_or_give_up(&self, d: &DeliveryRow, why: &str) -> DeliveryResult {
        if d.attempts >= self.config.max_attempts {
            return result(
                d,
                "dead",
                format!("gave up after {} attempts: {why}", d.attempts),
            );
        }
        let exponent = (d.attempts - 1).clamp(0, 20) as u32;
        let delay = self
            .config
            .retry_base
            .saturating_mul(2u32.saturating_pow(exponent))
            .min(Duration::from_secs(3_600));
        DeliveryResult {
            id: d.id,
            status: "pending",
            provider_ref: None,
            error: Some(format!("attempt {} failed: {why}", d.attempts)),
            next_attempt_at: millis(self.now()) + delay.as_millis() as i64,
        }
    }
}
