//! A record's timeline: the rows of every history store that belongs to it (purchases, points,
//! inquiries, custom stores; a business's interactions) and, for tourists, the messages flows
//! sent them, the events that came back (opens, clicks, bounces, partners' events) and the flows
//! they entered, merged newest first and paged with one cursor.
//!
//! Each source is read through the path that already enforces rights: history stores through
//! [`Store::search`] (field and record rights, the access log), the engine's tables only for
//! callers who may view flows. A source the caller may not view is left out, not refused.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, NaiveDate, Utc};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde::{Deserialize, Serialize};
use serde_json::{Value as Json, json};
use tabiji_model::field::Label;
use tabiji_model::filter::{FieldTest, Filter, Operator};
use tabiji_model::flow::CONTACTS;
use tabiji_model::{EntitySchema, Op};

use crate::auth::Principal;
use crate::entities::flow;
use crate::error::{ItemError, Result, StorageError};
use crate::flows::FLOWS;
use crate::journeys::{self, Before};
use crate::records::{Record, Store};
use crate::search::{SearchRequest, Sort, cursor_after, decode_cursor, encode_cursor};

/// Entries per page when the request names no limit, and the most it may ask for.
const DEFAULT_LIMIT: u64 = 50;
const MAX_LIMIT: u64 = 200;

/// The sources kept in the engine's tables, by the key entries carry.
pub const MESSAGES: &str = "messages";
pub const EVENTS: &str = "events";
pub const RUNS: &str = "runs";

#[derive(Debug, Clone, Default)]
pub struct TimelineRequest {
    /// The `next_before` of the previous page.
    pub before: Option<String>,
    pub limit: Option<u64>,
    /// Only these sources (keys as in the answer's `sources`); every one the caller may view
    /// when left out.
    pub sources: Option<Vec<String>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TimelineEntry {
    /// A history store's entity name, or `messages`, `events`, `runs`.
    pub source: String,
    /// The row's id within its source.
    pub id: i64,
    /// When it happened (RFC 3339; a date for stores timed by a date field); absent when the
    /// row has no time.
    pub at: Option<String>,
    /// The history row as the caller may see it, or the message, event or run.
    pub data: Json,
}

#[derive(Debug, Clone, Serialize)]
pub struct TimelineSource {
    pub key: String,
    pub label: Label,
    /// A history store, whose rows are records of its own (`POST /api/data/{key}` adds one);
    /// false for the engine's messages, events and runs, which flows write.
    pub history: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct TimelinePage {
    pub entries: Vec<TimelineEntry>,
    /// Pass as `before` for the next (older) page; absent on the last one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_before: Option<String>,
    /// Every source the caller may view, whether or not this page asked for it.
    pub sources: Vec<TimelineSource>,
}

/// Where a source's reading stopped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Position {
    /// A history store: the search cursor after the last entry shown.
    After(String),
    /// An engine table: time (epoch ms) and id of the last entry shown.
    Before(i64, i64),
    /// Every entry has been shown.
    Done,
}

enum SourceKind {
    History {
        parent_field: String,
        time_field: String,
    },
    Messages,
    Events,
    Runs,
}

struct Source {
    key: String,
    label: Label,
    kind: SourceKind,
}

/// One entry read but perhaps not yet shown, with what to resume from once it is.
struct Candidate {
    at_ms: Option<i64>,
    entry: TimelineEntry,
    resume: Position,
}

fn label(ja: &str, en: &str) -> Label {
    Label {
        ja: ja.into(),
        en: en.into(),
    }
}

fn invalid(field: &str, code: &'static str, message: impl Into<String>) -> StorageError {
    StorageError::invalid(ItemError::field(field, code, message))
}

/// A timeline cursor holds a search cursor per history store, so it may be longer than one.
const MAX_CURSOR: usize = 16_384;

fn decode(s: &str) -> Option<BTreeMap<String, Position>> {
    decode_cursor(s, MAX_CURSOR)
}

/// A history row's time as epoch milliseconds, for merging: timestamps as stored, dates at
/// their start (UTC, so that the order does not depend on the reader's zone).
fn time_of(value: Option<&Json>) -> Option<i64> {
    let text = value?.as_str()?;
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(t.timestamp_millis());
    }
    let date = NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()?;
    Some(date.and_hms_opt(0, 0, 0)?.and_utc().timestamp_millis())
}

fn rfc3339(ms: i64) -> Option<String> {
    DateTime::from_timestamp_millis(ms).map(|t| t.to_rfc3339())
}

/// The newest of the sources' next entries: timed entries before untimed ones (which sort last,
/// as searches put empty values last), then the earlier source in the list.
fn newest(heads: &[Option<&Candidate>]) -> Option<usize> {
    heads
        .iter()
        .enumerate()
        .filter_map(|(i, c)| c.map(|c| (i, c.at_ms)))
        .max_by(|(i, a), (j, b)| {
            (a.is_some(), *a)
                .cmp(&(b.is_some(), *b))
                .then_with(|| j.cmp(i))
        })
        .map(|(i, _)| i)
}

impl Store {
    /// The sources of `entity`'s timelines the caller may view.
    fn timeline_sources(&self, who: &Principal, entity: &str) -> Vec<Source> {
        let schemas = self.schemas();
        let mut children: Vec<&EntitySchema> = schemas
            .all()
            .map(|s| s.as_ref())
            .filter(|s| s.parent.as_ref().is_some_and(|p| p.entity == entity))
            .collect();
        children.sort_by(|a, b| a.name.cmp(&b.name));
        let mut sources = Vec::new();
        for child in children {
            let parent_field = child.parent.as_ref().map(|p| p.field.clone());
            let time_field = child
                .time_field
                .clone()
                .unwrap_or_else(|| "created_at".into());
            let Some(parent_field) = parent_field else {
                continue;
            };
            let rights = &who.rights;
            if rights.allows(&child.name, Op::View)
                && rights.can_view_field(&child.name, &parent_field)
                && rights.can_view_field(&child.name, &time_field)
            {
                sources.push(Source {
                    key: child.name.clone(),
                    label: child.label.clone(),
                    kind: SourceKind::History {
                        parent_field,
                        time_field,
                    },
                });
            }
        }
        if entity == CONTACTS && who.rights.allows(FLOWS, Op::View) {
            sources.push(Source {
                key: MESSAGES.into(),
                label: label("配信", "Messages"),
                kind: SourceKind::Messages,
            });
            sources.push(Source {
                key: EVENTS.into(),
                label: label("反応・イベント", "Events"),
                kind: SourceKind::Events,
            });
            sources.push(Source {
                key: RUNS.into(),
                label: label("シナリオ", "Scenarios"),
                kind: SourceKind::Runs,
            });
        }
        sources
    }

    /// A page of the record's timeline, newest first.
    pub async fn timeline(
        &self,
        who: &Principal,
        entity: &str,
        id: i64,
        request: &TimelineRequest,
        now: DateTime<Utc>,
    ) -> Result<TimelinePage> {
        let schema = self.entity_schema(entity).await?;
        self.require(who, entity, Op::View).await?;
        self.require_reachable(who, entity, &[id], now).await?;
        let found = journeys::existing(&self.db().conn, &schema.name, &[id]).await?;
        if !found.contains(&id) {
            return Err(StorageError::NotFound {
                entity: entity.into(),
                id,
            });
        }
        let limit = request.limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(invalid(
                "limit",
                "out_of_range",
                format!("limit must be between 1 and {MAX_LIMIT}"),
            ));
        }
        let all = self.timeline_sources(who, entity);
        if let Some(wanted) = &request.sources
            && let Some(unknown) = wanted.iter().find(|w| !all.iter().any(|s| &s.key == *w))
        {
            let known: Vec<&str> = all.iter().map(|s| s.key.as_str()).collect();
            return Err(invalid(
                "sources",
                "unknown_source",
                format!(
                    "{entity} timelines have no source {unknown:?} you may view; these are: {}",
                    known.join(", ")
                ),
            ));
        }
        let mut positions = match &request.before {
            Some(cursor) => decode(cursor).ok_or_else(|| {
                invalid(
                    "before",
                    "invalid_cursor",
                    "pass back the next_before of the previous page",
                )
            })?,
            None => BTreeMap::new(),
        };
        let chosen: Vec<&Source> = all
            .iter()
            .filter(|s| request.sources.as_ref().is_none_or(|w| w.contains(&s.key)))
            .collect();

        let mut read: Vec<(Vec<Candidate>, bool)> = Vec::with_capacity(chosen.len());
        for source in &chosen {
            let position = positions.get(&source.key);
            if position == Some(&Position::Done) {
                read.push((Vec::new(), true));
                continue;
            }
            read.push(
                self.read_source(who, source, id, position, limit, now)
                    .await?,
            );
        }

        let mut taken: Vec<usize> = vec![0; read.len()];
        let mut entries = Vec::new();
        while (entries.len() as u64) < limit {
            let heads: Vec<Option<&Candidate>> = read
                .iter()
                .zip(&taken)
                .map(|((items, _), n)| items.get(*n))
                .collect();
            let Some(i) = newest(&heads) else { break };
            taken[i] += 1;
            entries.push(i);
        }
        let mut page = Vec::with_capacity(entries.len());
        let mut cursors: Vec<std::vec::IntoIter<Candidate>> = read
            .iter_mut()
            .map(|(items, _)| std::mem::take(items).into_iter())
            .collect();
        for i in entries {
            let candidate = cursors[i].next().expect("taken from what was read");
            positions.insert(chosen[i].key.clone(), candidate.resume);
            page.push(candidate.entry);
        }
        for (i, source) in chosen.iter().enumerate() {
            let exhausted = read[i].1;
            if exhausted && cursors[i].len() == 0 {
                positions.insert(source.key.clone(), Position::Done);
            }
        }
        let more = chosen
            .iter()
            .any(|s| positions.get(&s.key) != Some(&Position::Done));
        self.log(
            who,
            "view",
            entity,
            Some(id),
            "ok",
            Some(format!("timeline: {} entries", page.len())),
        )
        .await?;
        Ok(TimelinePage {
            entries: page,
            next_before: more.then(|| encode_cursor(&positions)),
            sources: all
                .into_iter()
                .map(|s| TimelineSource {
                    history: matches!(s.kind, SourceKind::History { .. }),
                    key: s.key,
                    label: s.label,
                })
                .collect(),
        })
    }

    /// Up to `limit` entries of one source after `position`, newest first, and whether they
    /// are the last it holds.
    async fn read_source(
        &self,
        who: &Principal,
        source: &Source,
        id: i64,
        position: Option<&Position>,
        limit: u64,
        now: DateTime<Utc>,
    ) -> Result<(Vec<Candidate>, bool)> {
        let stale = || {
            invalid(
                "before",
                "invalid_cursor",
                "pass back the next_before of the previous page",
            )
        };
        let before: Before = match position {
            None => None,
            Some(Position::Before(at, id)) => Some((*at, *id)),
            Some(Position::After(_)) | Some(Position::Done) => None,
        };
        let foreign = match (&source.kind, position) {
            (SourceKind::History { .. }, Some(Position::Before(..))) => true,
            (SourceKind::History { .. }, _) => false,
            (_, Some(Position::After(_))) => true,
            _ => false,
        };
        if foreign {
            return Err(stale());
        }
        let conn = &self.db().conn;
        let fetch = limit + 1;
        match &source.kind {
            SourceKind::History {
                parent_field,
                time_field,
            } => {
                let after = match position {
                    Some(Position::After(cursor)) => Some(cursor.clone()),
                    _ => None,
                };
                let request = SearchRequest {
                    filter: Some(Filter::Field(FieldTest {
                        key: parent_field.clone(),
                        op: Operator::Eq,
                        value: Some(json!(id)),
                    })),
                    sort: Some(Sort {
                        field: time_field.clone(),
                        desc: true,
                    }),
                    after,
                    limit: Some(limit),
                    count: false,
                    zone: None,
                };
                let found = self.search(who, &source.key, &request, now).await?;
                let exhausted = found.next_after.is_none();
                let items = found
                    .items
                    .into_iter()
                    .map(|record| history_candidate(&source.key, time_field, record))
                    .collect();
                Ok((items, exhausted))
            }
            SourceKind::Messages => {
                let rows = journeys::deliveries_of_contact(conn, id, before, fetch).await?;
                let names = self.flow_names(rows.iter().map(|d| d.flow_id)).await?;
                Ok(engine_page(MESSAGES, limit, rows, |d| {
                    let data = json!({
                        "channel": d.channel, "template": d.template,
                        "flow": {"id": d.flow_id, "name": names.get(&d.flow_id)},
                        "node": d.node, "status": d.status, "attempts": d.attempts,
                        "error": d.error, "updated_at": rfc3339(d.updated_at),
                    });
                    (d.created_at, d.id, data)
                }))
            }
            SourceKind::Events => {
                let rows = journeys::events_of_contact(conn, id, before, fetch).await?;
                Ok(engine_page(EVENTS, limit, rows, |e| {
                    let properties =
                        serde_json::from_str::<Json>(&e.properties).unwrap_or(Json::Null);
                    let data = json!({
                        "name": e.name, "delivery_id": e.delivery_id, "properties": properties,
                    });
                    (e.occurred_at, e.id, data)
                }))
            }
            SourceKind::Runs => {
                let rows = journeys::runs_of_contact(conn, id, before, fetch).await?;
                let names = self.flow_names(rows.iter().map(|r| r.flow_id)).await?;
                Ok(engine_page(RUNS, limit, rows, |r| {
                    let data = json!({
                        "flow": {"id": r.flow_id, "name": names.get(&r.flow_id)},
                        "version": r.version, "state": r.state, "node": r.node,
                        "outcome": r.outcome, "updated_at": rfc3339(r.updated_at),
                    });
                    (r.entered_at, r.id, data)
                }))
            }
        }
    }

    async fn flow_names(&self, ids: impl Iterator<Item = i64>) -> Result<HashMap<i64, String>> {
        let mut ids: Vec<i64> = ids.collect();
        ids.sort_unstable();
        ids.dedup();
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        Ok(flow::Entity::find()
            .filter(flow::Column::Id.is_in(ids))
            .all(&self.db().conn)
            .await?
            .into_iter()
            .map(|f| (f.id, f.name))
            .collect())
    }
}

/// Up to `limit` of the `limit + 1` rows read from an engine table, each turned into its time
/// (epoch ms), id and data by `entry`; and whether they are the last the table holds.
fn engine_page<R>(
    source: &str,
    limit: u64,
    rows: Vec<R>,
    entry: impl Fn(R) -> (i64, i64, Json),
) -> (Vec<Candidate>, bool) {
    let exhausted = rows.len() as u64 <= limit;
    let items = rows
        .into_iter()
        .take(limit as usize)
        .map(|row| {
            let (at, id, data) = entry(row);
            Candidate {
                at_ms: Some(at),
                resume: Position::Before(at, id),
                entry: TimelineEntry {
                    source: source.into(),
                    id,
                    at: rfc3339(at),
                    data,
                },
            }
        })
        .collect();
    (items, exhausted)
}

fn history_candidate(source: &str, time_field: &str, record: Record) -> Candidate {
    let at = record
        .get(time_field)
        .and_then(Json::as_str)
        .map(str::to_owned);
    Candidate {
        at_ms: time_of(record.get(time_field)),
        resume: Position::After(cursor_after(&record, time_field)),
        entry: TimelineEntry {
            source: source.into(),
            id: record.get("id").and_then(Json::as_i64).unwrap_or(0),
            at,
            data: Json::Object(record),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journeys::{NewEvent, insert_events};
    use crate::migration;
    use crate::scratch::Scratch;

    fn now() -> DateTime<Utc> {
        "2026-11-28T03:00:00Z".parse().unwrap()
    }

    /// Rows of three sources at the same few instants, read one entry a page: each comes once,
    /// in the same order as one big page gives, however the ties fall.
    #[tokio::test]
    async fn pages_of_one_neither_repeat_nor_skip_entries_that_share_a_time() {
        for scratch in Scratch::all_backends().await {
            let db = crate::Db::connect(&scratch.url).await.unwrap();
            migration::run(&db).await.unwrap();
            let store = Store::open(db).await.unwrap();
            let admin = Principal::system();
            let tourist = store
                .bulk_create(&admin, CONTACTS, vec![json!({"email": "tie@example.jp"})])
                .await
                .unwrap()[0]
                .id;
            let instants = ["2026-11-01T00:00:00Z", "2026-11-02T00:00:00Z"];
            let purchases = (0..6)
                .map(
                    |i| json!({"tourist_id": tourist, "amount": i, "occurred_at": instants[i % 2]}),
                )
                .collect();
            store
                .bulk_create(&admin, "purchases", purchases)
                .await
                .unwrap();
            let inquiries = (0..3)
                .map(|i| json!({"tourist_id": tourist, "subject": format!("質問{i}")}))
                .collect();
            store
                .bulk_create(&admin, "inquiries", inquiries)
                .await
                .unwrap();
            let events = (0..5)
                .map(|i| NewEvent {
                    event_key: format!("e{i}"),
                    contact_id: tourist,
                    name: "visited".into(),
                    delivery_id: None,
                    properties: "{}".into(),
                    occurred_at: DateTime::parse_from_rfc3339(instants[i % 2])
                        .unwrap()
                        .timestamp_millis(),
                })
                .collect();
            insert_events(&store.db().conn, events, 0).await.unwrap();

            let whole = store
                .timeline(
                    &admin,
                    CONTACTS,
                    tourist,
                    &TimelineRequest {
                        limit: Some(200),
                        ..TimelineRequest::default()
                    },
                    now(),
                )
                .await
                .unwrap();
            assert!(whole.next_before.is_none());
            let all: Vec<(String, i64)> = whole
                .entries
                .iter()
                .map(|e| (e.source.clone(), e.id))
                .collect();
            assert_eq!(all.len(), 14);
            let times: Vec<Option<i64>> = whole
                .entries
                .iter()
                .map(|e| time_of(e.at.as_ref().map(|a| Json::String(a.clone())).as_ref()))
                .collect();
            assert!(
                times.windows(2).all(|w| w[0] >= w[1]),
                "newest first: {times:?}"
            );

            let mut paged = Vec::new();
            let mut before = None;
            loop {
                let page = store
                    .timeline(
                        &admin,
                        CONTACTS,
                        tourist,
                        &TimelineRequest {
                            before: before.take(),
                            limit: Some(1),
                            sources: None,
                        },
                        now(),
                    )
                    .await
                    .unwrap();
                paged.extend(page.entries.iter().map(|e| (e.source.clone(), e.id)));
                match page.next_before {
                    Some(next) => before = Some(next),
                    None => break,
                }
                assert!(paged.len() <= all.len(), "the pages never end: {paged:?}");
            }
            assert_eq!(paged, all);
        }
    }

    fn candidate(at_ms: Option<i64>) -> Candidate {
        Candidate {
            at_ms,
            resume: Position::Done,
            entry: TimelineEntry {
                source: String::new(),
                id: 0,
                at: None,
                data: Json::Null,
            },
        }
    }

    #[test]
    fn the_newest_head_goes_first_and_untimed_rows_last() {
        let (old, new, untimed) = (candidate(Some(1)), candidate(Some(5)), candidate(None));
        assert_eq!(newest(&[Some(&old), Some(&new), Some(&untimed)]), Some(1));
        assert_eq!(newest(&[Some(&untimed), None, Some(&old)]), Some(2));
        assert_eq!(newest(&[Some(&untimed), None]), Some(0));
        assert_eq!(newest(&[None, None]), None);
    }

    #[test]
    fn ties_go_to_the_earlier_source() {
        let (a, b) = (candidate(Some(3)), candidate(Some(3)));
        assert_eq!(newest(&[None, Some(&a), Some(&b)]), Some(1));
    }

    #[test]
    fn cursors_survive_the_round_trip_and_garbage_is_refused() {
        let positions = BTreeMap::from([
            ("purchases".to_string(), Position::After("7b7d".into())),
            (
                "messages".to_string(),
                Position::Before(1_700_000_000_000, 9),
            ),
            ("runs".to_string(), Position::Done),
        ]);
        assert_eq!(decode(&encode_cursor(&positions)), Some(positions));
        assert_eq!(decode("zz"), None);
        assert_eq!(decode("abc"), None);
    }

    #[test]
    fn dates_and_timestamps_order_together() {
        let day = time_of(Some(&json!("2026-11-28"))).unwrap();
        let later = time_of(Some(&json!("2026-11-28T09:00:00+09:00"))).unwrap();
        assert_eq!(later - day, 0);
        assert!(time_of(Some(&json!("2026-11-28T10:00:00Z"))).unwrap() > later);
        assert_eq!(time_of(Some(&json!(42))), None);
        assert_eq!(time_of(None), None);
    }
}
