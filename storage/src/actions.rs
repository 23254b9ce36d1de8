//! Bulk actions on the records a filter matches (DM-2): set fields, add or remove choices
//! (tags), delete. A preview counts first; the action runs in one transaction through the
//! ordinary bulk paths, so every value is validated, every right checked and the change logged.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json, json};
use tabiji_model::filter::Filter;
use tabiji_model::{FieldType, Op};

use crate::auth::Principal;
use crate::error::{ItemError, Result, StorageError};
use crate::records::{MAX_BULK, Store};
use crate::search::parse_zone;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilteredAction {
    pub filter: Filter,
    pub action: Action,
    /// Only count what the action would touch.
    #[serde(default)]
    pub preview: bool,
    /// The count the preview showed: the action is refused if the filter now matches another
    /// number of records, so nobody changes more than they saw.
    #[serde(default)]
    pub expected_count: Option<u64>,
    #[serde(default)]
    pub zone: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Action {
    /// Field: value pairs written to every record.
    Set(Map<String, Json>),
    /// Options added to multiple-choice fields (tagging): `{"interests": ["food"]}`.
    AddChoices(Map<String, Json>),
    RemoveChoices(Map<String, Json>),
    Delete,
}

#[derive(Debug, Clone, Serialize)]
pub struct ActionReport {
    /// Records the filter matched.
    pub matched: u64,
    /// Records changed or deleted (0 for a preview).
    pub changed: u64,
    pub preview: bool,
}

impl Store {
    pub async fn act_on_filtered(
        &self,
        who: &Principal,
        entity: &str,
        request: &FilteredAction,
        now: DateTime<Utc>,
    ) -> Result<ActionReport> {
        let op = if request.action == Action::Delete {
            Op::Delete
        } else {
            Op::Edit
        };
        self.require(who, entity, op).await?;
        let zone = parse_zone(request.zone.as_deref())?;
        let resolved = self
            .resolve_filter(Some(who), entity, &request.filter, zone, now)
            .await?;
        // One more than the limit, to tell "too many" from "exactly the limit".
        let ids = self
            .ids_matching(entity, &resolved.cond, 0, MAX_BULK as u64 + 1)
            .await?;
        let matched = ids.len() as u64;
        if matched > MAX_BULK as u64 {
            return Err(StorageError::invalid(ItemError::field(
                "filter",
                "too_many_records",
                format!(
                    "the filter matches more than {MAX_BULK} records; narrow it and act in steps"
                ),
            )));
        }
        if request.preview {
            return Ok(ActionReport {
                matched,
                changed: 0,
                preview: true,
            });
        }
        if let Some(expected) = request.expected_count
            && expected != matched
        {
            return Err(StorageError::Conflict(vec![ItemError::field(
                "expected_count",
                "changed_since_preview",
                format!(
                    "the filter matched {expected} records at the preview and {matched} now; preview again"
                ),
            )]));
        }
        if ids.is_empty() {
            return Ok(ActionReport {
                matched,
                changed: 0,
                preview: false,
            });
        }
        let changed = match &request.action {
            Action::Delete => self.bulk_delete(who, entity, &ids).await?.len(),
            Action::Set(values) => {
                if values.is_empty() {
                    return Err(StorageError::invalid(ItemError::field(
                        "action.set",
                        "nothing_to_set",
                        "name at least one field and its value",
                    )));
                }
                let items: Vec<Json> = ids
                    .iter()
                    .map(|id| {
                        let mut item = values.clone();
                        item.insert("id".into(), json!(id));
                        Json::Object(item)
                    })
                    .collect();
                self.bulk_update(who, entity, &items).await?.len()
            }
            Action::AddChoices(changes) | Action::RemoveChoices(changes) => {
                let add = matches!(request.action, Action::AddChoices(_));
                let items = self.choice_changes(entity, &ids, changes, add).await?;
                if items.is_empty() {
                    0
                } else {
                    self.bulk_update(who, entity, &items).await?.len()
                }
            }
        };
        Ok(ActionReport {
            matched,
            changed: changed as u64,
            preview: false,
        })
    }

    /// The update of each record whose choices the change alters.
    async fn choice_changes(
        &self,
        entity: &str,
        ids: &[i64],
        changes: &Map<String, Json>,
        add: bool,
    ) -> Result<Vec<Json>> {
        let schema = self.entity_schema(entity).await?;
        let at = if add {
            "action.add_choices"
        } else {
            "action.remove_choices"
        };
        if changes.is_empty() {
            return Err(StorageError::invalid(ItemError::field(
                at,
                "nothing_to_set",
                "name a multiple-choice field and the options",
            )));
        }
        let mut wanted: Vec<(String, BTreeSet<String>)> = Vec::new();
        for (key, options) in changes {
            let path = format!("{at}.{key}");
            let Some(FieldType::MultiChoice { options: allowed }) =
                schema.field(key).map(|f| &f.ty)
            else {
                return Err(StorageError::invalid(ItemError::field(
                    &path,
                    "not_multiple_choice",
                    format!("{entity} has no multiple-choice field {key:?}"),
                )));
            };
            let listed: Option<BTreeSet<String>> = options.as_array().and_then(|items| {
                items
                    .iter()
                    .map(|o| o.as_str().map(str::to_string))
                    .collect()
            });
            let Some(listed) = listed.filter(|l| !l.is_empty()) else {
                return Err(StorageError::invalid(ItemError::field(
                    &path,
                    "invalid_type",
                    "list the options as strings",
                )));
            };
            if let Some(bad) = listed.iter().find(|o| !allowed.contains(o)) {
                return Err(StorageError::invalid(ItemError::field(
                    &path,
                    "invalid_choice",
                    format!("{bad:?} is not one of: {}", allowed.join(", ")),
                )));
            }
            wanted.push((key.clone(), listed));
        }
        let keys: Vec<String> = wanted.iter().map(|(k, _)| k.clone()).collect();
        let current = self.contact_fields(entity, ids, &keys).await?;
        let mut items = Vec::new();
        for id in ids {
            let mut item = Map::new();
            for (key, options) in &wanted {
                let held: BTreeSet<String> = current
                    .get(id)
                    .and_then(|r| r.get(key))
                    .and_then(Json::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(|o| o.as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default();
                let next: BTreeSet<String> = if add {
                    held.union(options).cloned().collect()
                } else {
                    held.difference(options).cloned().collect()
                };
                if next != held {
                    item.insert(key.clone(), json!(next));
                }
            }
            if !item.is_empty() {
                item.insert("id".into(), json!(id));
                items.push(Json::Object(item));
            }
        }
        Ok(items)
    }
}
