//! Rows of an import flow written as records: a bad row is rejected with its line and reason,
//! the good rows of the batch are committed together, and a row that changes nothing writes
//! nothing, so the same file imported twice leaves the data as it was.

use crate::db::begin_write;
use std::collections::{BTreeSet, HashMap, HashSet};

use chrono::Utc;
use sea_orm::sea_query::Value;
use sea_orm::sea_query::{Expr, ExprTrait, Query};
use sea_orm::{ConnectionTrait, DatabaseTransaction, DbBackend, Statement};
use serde::Serialize;
use serde_json::{Map, Value as Json};
use tabiji_model::import::{Action, ImportFlow};
use tabiji_model::schema::EntityKind;
use tabiji_model::{EntitySchema, FieldType, Op, StoredValue};

use super::{
    ItemStatus, Mode, Parsed, Store, col, decode, forbidden, rows_per_statement, to_sql, unique_key,
};
use crate::auth::Principal;
use crate::error::{ItemError, Result, StorageError};

/// One row of a file, mapped to fields.
#[derive(Debug, Clone)]
pub struct ImportRow {
    pub line: u64,
    /// Field key → cell text (empty cells absent, or null when the flow clears them).
    pub values: Map<String, Json>,
    /// The row asks for its record to be deleted.
    pub delete: bool,
    /// The value to look the linked record up by (the tourist's e-mail …).
    pub link: Option<String>,
    /// The row as it was in the file.
    pub raw: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rejected {
    pub line: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    pub reason: String,
    pub raw: String,
}

/// What a batch (or a whole file) did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Tally {
    pub created: u64,
    pub updated: u64,
    /// Rows that matched a record with the same values, or a history row already stored.
    pub unchanged: u64,
    pub deleted: u64,
    /// Rows merged into an earlier row with the same key in the same batch.
    pub merged: u64,
    pub rejected: Vec<Rejected>,
}

impl Tally {
    pub fn add(&mut self, other: Tally) {
        self.created += other.created;
        self.updated += other.updated;
        self.unchanged += other.unchanged;
        self.deleted += other.deleted;
        self.merged += other.merged;
        self.rejected.extend(other.rejected);
    }

    fn reject(&mut self, row: &ImportRow, error: &ItemError) {
        // The checks shared with the API say "item"; in a file, the numbers are lines.
        let message = error
            .message
            .replace("is also given in item ", "is also given on line ");
        self.rejected.push(Rejected {
            line: row.line,
            field: error.field.clone(),
            reason: match &error.field {
                Some(field) => format!("{field}: {message}"),
                None => message,
            },
            raw: row.raw.clone(),
        });
    }

    /// Rejects a record's row and every row merged into it: none of them was written.
    fn refuse(&mut self, rows: &[ImportRow], item: &Pending, error: &ItemError) {
        self.reject(&rows[item.row], error);
        for &row in &item.also {
            self.reject(&rows[row], error);
        }
        self.merged -= item.also.len() as u64;
    }
}

/// A row that parsed, on its way to being written.
#[derive(Clone)]
struct Pending {
    row: usize,
    parsed: Parsed,
    delete: bool,
    /// Later rows with the same key, merged into this one.
    also: Vec<usize>,
}

impl Store {
    /// Refuses a flow the caller may not run: importing into its entity, and creating,
    /// changing or deleting records there as the flow would.
    pub async fn require_import(&self, who: &Principal, flow: &ImportFlow) -> Result<()> {
        let mut ops = vec![Op::Import, Op::Create];
        if matches!(flow.action, Action::Upsert { .. }) {
            ops.push(Op::Edit);
        }
        if flow.delete_when.is_some() {
            ops.push(Op::Delete);
        }
        for op in ops {
            self.require(who, &flow.entity, op).await?;
        }
        let fields = flow
            .columns
            .iter()
            .map(|c| c.field.as_str())
            .chain(flow.constants.keys().map(String::as_str))
            .chain(flow.link.iter().map(|l| l.field.as_str()));
        for field in fields {
            if !who.rights.can_write_field(&flow.entity, field) {
                let error = forbidden(&flow.entity, Op::Import, Some(field));
                self.log(
                    who,
                    "import",
                    &flow.entity,
                    None,
                    "denied",
                    Some(error.to_string()),
                )
                .await?;
                return Err(error);
            }
        }
        self.require_link_view(who, flow).await
    }

    /// A link looks records up by a field: the caller must be able to see it, or the answers
    /// (linked, or "no such record") would tell them what they may not see.
    async fn require_link_view(&self, who: &Principal, flow: &ImportFlow) -> Result<()> {
        let Some(link) = &flow.link else {
            return Ok(());
        };
        let schema = self.entity(&flow.entity).await?;
        if let Some(FieldType::Reference { entity }) = schema.field(&link.field).map(|f| &f.ty) {
            self.require(who, entity, Op::View).await?;
            if !who.rights.can_view_field(entity, &link.by) {
                return Err(forbidden(entity, Op::View, Some(&link.by)));
            }
        }
        Ok(())
    }

    /// Rejected rows carry whole lines of a file: reading them needs the view of every field
    /// the flow fills and of the field its link looks up.
    pub async fn require_view_of_import(&self, who: &Principal, flow: &ImportFlow) -> Result<()> {
        for field in flow
            .columns
            .iter()
            .map(|c| c.field.as_str())
            .chain(flow.constants.keys().map(String::as_str))
        {
            if !who.rights.can_view_field(&flow.entity, field) {
                return Err(forbidden(&flow.entity, Op::View, Some(field)));
            }
        }
        self.require_link_view(who, flow).await
    }

    /// Writes one batch of an import flow's rows; the flow was checked and
    /// [`Store::require_import`] passed. The good rows are committed together.
    /// The generic API's batch upsert (DI-12): each item creates the record whose `key` (a
    /// unique field such as the e-mail) it names, or changes the one that has it; items with
    /// the same key merge, later values winning. The good items are written together; the
    /// others come back as rejected, with their index (from 0) and reason. Needs the view,
    /// create and edit rights on the entity, the view of the key field and the right to write
    /// every field the items hold.
    pub async fn upsert_items(
        &self,
        who: &Principal,
        entity: &str,
        key: &str,
        items: Vec<Json>,
    ) -> Result<Tally> {
        let schema = self.entity(entity).await?;
        for op in [Op::View, Op::Create, Op::Edit] {
            self.require(who, entity, op).await?;
        }
        let unique = schema.field(key).is_some_and(|f| f.unique);
        if !unique {
            return Err(StorageError::invalid(ItemError::field(
                "key",
                "key_not_unique",
                format!("{entity} has no unique field {key:?} to match records by"),
            )));
        }
        let mut fields = BTreeSet::from([key.to_string()]);
        let mut rows = Vec::with_capacity(items.len());
        let mut not_objects = Vec::new();
        for (index, item) in items.into_iter().enumerate() {
            let raw = item.to_string();
            match item {
                Json::Object(values) => {
                    fields.extend(values.keys().cloned());
                    rows.push(ImportRow {
                        line: index as u64 + 1,
                        values,
                        delete: false,
                        link: None,
                        raw,
                    });
                }
                _ => not_objects.push(Rejected {
                    line: index as u64 + 1,
                    field: None,
                    reason: "is not an object of fields".into(),
                    raw,
                }),
            }
        }
        let denied = fields.iter().find(|field| {
            !who.rights.can_write_field(entity, field)
                || (field.as_str() == key && !who.rights.can_view_field(entity, key))
        });
        if let Some(field) = denied {
            let error = forbidden(entity, Op::Edit, Some(field));
            self.log(
                who,
                "upsert",
                entity,
                None,
                "denied",
                Some(error.to_string()),
            )
            .await?;
            return Err(error);
        }
        let flow = ImportFlow {
            format: tabiji_model::import::FORMAT_VERSION,
            name: "API upsert".into(),
            description: String::new(),
            entity: entity.into(),
            source: Default::default(),
            file: Default::default(),
            columns: fields
                .iter()
                .map(|field| tabiji_model::import::ColumnMap {
                    column: field.clone(),
                    field: field.clone(),
                    convert: None,
                    codes: None,
                })
                .collect(),
            action: Action::Upsert { key: key.into() },
            constants: Default::default(),
            delete_when: None,
            link: None,
            empty_cells: Default::default(),
            cron: None,
            recurrence: None,
            zone: "Asia/Tokyo".into(),
        };
        let mut tally = if rows.is_empty() {
            Tally::default()
        } else {
            self.import_rows(who, &flow, rows).await?
        };
        tally.rejected.extend(not_objects);
        tally.rejected.sort_by_key(|r| r.line);
        for rejected in &mut tally.rejected {
            // Items are counted from 0, as in every bulk answer.
            rejected.line -= 1;
        }
        self.log(
            who,
            "upsert",
            entity,
            None,
            "ok",
            Some(format!(
                "by {key}: {} created, {} updated, {} unchanged, {} merged, {} rejected",
                tally.created,
                tally.updated,
                tally.unchanged,
                tally.merged,
                tally.rejected.len()
            )),
        )
        .await?;
        Ok(tally)
    }

    pub async fn import_rows(
        &self,
        who: &Principal,
        flow: &ImportFlow,
        mut rows: Vec<ImportRow>,
    ) -> Result<Tally> {
        let schema = self.entity(&flow.entity).await?;
        let mut tally = Tally::default();
        let mut rejected_rows = vec![false; rows.len()];
        if let Some(key) = upsert_key(flow) {
            for row in rows.iter_mut().filter(|r| r.delete) {
                row.values.retain(|field, _| field == key);
            }
        }
        if flow.link.is_some() {
            self.resolve_links(who, flow, &mut rows, &mut rejected_rows, &mut tally)
                .await?;
        }
        // Parsed as API writes are (on several cores for a large batch); the values are
        // moved out of the rows, which keep their line and text for rejections.
        let mut items = Vec::with_capacity(rows.len());
        let mut origin = Vec::with_capacity(rows.len());
        for (i, row) in rows.iter_mut().enumerate() {
            if rejected_rows[i] {
                continue;
            }
            let mut values = std::mem::take(&mut row.values);
            for (field, value) in &flow.constants {
                values.insert(field.clone(), Json::String(value.clone()));
            }
            items.push(Json::Object(values));
            origin.push(i);
        }
        let (parsed, errors) = Self::parse_items(who, &schema, &items, 0, Mode::Update)?;
        drop(items);
        let mut first_error: HashMap<usize, ItemError> = HashMap::new();
        for error in errors {
            if let Some(index) = error.index {
                first_error.entry(index).or_insert(error);
            }
        }
        let mut parsed = parsed.into_iter();
        let mut pending = Vec::with_capacity(origin.len());
        for (index, &row) in origin.iter().enumerate() {
            match first_error.get(&index) {
                Some(error) => tally.reject(&rows[row], error),
                None => pending.push(Pending {
                    row,
                    parsed: parsed
                        .next()
                        .expect("one parsed item per item without error"),
                    delete: rows[row].delete,
                    also: Vec::new(),
                }),
            }
        }
        // Under record rights, an attempt whose writes leave records outside them is rolled
        // back, and tried again without those rows, which are rejected.
        let guarded = self.scope(who, &flow.entity, Utc::now())?.is_some();
        loop {
            let (attempt, before) = if guarded {
                (pending.clone(), Some(tally.clone()))
            } else {
                (std::mem::take(&mut pending), None)
            };
            let outside = match &flow.action {
                Action::Upsert { key } => {
                    self.upsert(who, &schema, key, &rows, attempt, &mut tally)
                        .await?
                }
                Action::Append { .. } if schema.kind == EntityKind::PointLedger => {
                    self.append_ledger(who, &schema, &rows, attempt, &mut tally)
                        .await?
                }
                Action::Append { unique_by } => {
                    self.append(who, &schema, unique_by, &rows, attempt, &mut tally)
                        .await?
                }
            };
            let Some(before) = before.filter(|_| !outside.is_empty()) else {
                break;
            };
            tally = before;
            let error = ItemError {
                index: None,
                field: None,
                code: "outside_your_records",
                message: format!(
                    "the {} record would not match your record rights",
                    flow.entity
                ),
            };
            pending.retain(|p| !outside.contains(&p.row));
            for row in outside {
                tally.reject(&rows[row], &error);
            }
        }
        tally.rejected.sort_by_key(|r| r.line);
        self.log(
            who,
            "import",
            &flow.entity,
            None,
            "ok",
            Some(format!(
                "{} created, {} updated, {} deleted, {} unchanged, {} rejected",
                tally.created,
                tally.updated,
                tally.deleted,
                tally.unchanged,
                tally.rejected.len()
            )),
        )
        .await?;
        Ok(tally)
    }

    /// Fills the link field from the linked record's key, rejecting rows whose key is empty
    /// or belongs to no record.
    async fn resolve_links(
        &self,
        who: &Principal,
        flow: &ImportFlow,
        rows: &mut [ImportRow],
        rejected: &mut [bool],
        tally: &mut Tally,
    ) -> Result<()> {
        let Some(link) = &flow.link else {
            return Ok(());
        };
        let schema = self.entity(&flow.entity).await?;
        let Some(FieldType::Reference { entity: target }) =
            schema.field(&link.field).map(|f| f.ty.clone())
        else {
            return Ok(());
        };
        let target_schema = self.entity(&target).await?;
        let Some(by) = target_schema.field(&link.by) else {
            return Ok(());
        };
        let mut wanted: Vec<Option<StoredValue>> = Vec::with_capacity(rows.len());
        for (i, row) in rows.iter().enumerate() {
            let text = row.link.as_deref().unwrap_or("").trim();
            if text.is_empty() {
                rejected[i] = true;
                tally.reject(
                    row,
                    &ItemError::field(
                        &link.field,
                        "empty_link",
                        format!(
                            "column {} is empty, so no {target} record can be found",
                            link.column
                        ),
                    ),
                );
                wanted.push(None);
                continue;
            }
            match by.parse(&Json::String(text.to_string())) {
                Ok(value) => wanted.push(Some(value)),
                Err(e) => {
                    rejected[i] = true;
                    tally.reject(row, &ItemError::field(&link.column, e.code, e.message));
                    wanted.push(None);
                }
            }
        }
        let values: Vec<StoredValue> = wanted.iter().flatten().cloned().collect::<Vec<_>>();
        let mut ids: HashMap<String, i64> = HashMap::new();
        let backend = self.db.backend();
        let values: Vec<&StoredValue> = values.iter().collect();
        // A linked record the caller does not reach is, to them, no record.
        let scope = self.scope_expr(who, &target, Utc::now()).await?;
        for chunk in values.chunks(super::among_chunk(backend)) {
            let mut q = Query::select();
            q.column(col("id"))
                .column(col(&by.key))
                .from(col(&target))
                .and_where(super::among(backend, &by.key, by.ty.column_kind(), chunk));
            if let Some(scope) = &scope {
                q.and_where(scope.clone());
            }
            for row in self.db.conn.query_all(&q).await? {
                let key = decode(&row, by)?;
                let key = match key {
                    Json::String(s) => s,
                    other => other.to_string(),
                };
                ids.insert(key, row.try_get("", "id")?);
            }
        }
        for (i, row) in rows.iter_mut().enumerate() {
            let Some(value) = &wanted[i] else {
                continue;
            };
            let key = unique_key(value).unwrap_or_default();
            match ids.get(&key) {
                Some(id) => {
                    row.values.insert(link.field.clone(), Json::from(*id));
                }
                None => {
                    rejected[i] = true;
                    tally.reject(
                        row,
                        &ItemError::field(
                            &link.column,
                            "unknown_reference",
                            format!("no {target} record has {} {key}", link.by),
                        ),
                    );
                }
            }
        }
        Ok(())
    }

    /// Returns the rows whose records the writes left outside the caller's record rights; then
    /// nothing was kept.
    async fn upsert(
        &self,
        who: &Principal,
        schema: &EntitySchema,
        key: &str,
        rows: &[ImportRow],
        pending: Vec<Pending>,
        tally: &mut Tally,
    ) -> Result<Vec<usize>> {
        let key_at = super::field_index(schema, key);
        // One entry per key, in the order keys first appear; later rows merge into it.
        let mut by_key: HashMap<String, usize> = HashMap::new();
        let mut merged: Vec<Pending> = Vec::new();
        for item in pending {
            let Some(value) = item.parsed.at(key_at).and_then(unique_key) else {
                tally.reject(
                    &rows[item.row],
                    &ItemError::field(
                        key,
                        "empty_key",
                        "is empty, so the record cannot be matched",
                    ),
                );
                continue;
            };
            match by_key.get(&value) {
                Some(&at) => {
                    let earlier = &mut merged[at];
                    earlier.delete = item.delete;
                    earlier.also.push(item.row);
                    // Later non-empty cells win; a cleared cell does not undo an earlier one.
                    for (field, v) in item.parsed.values.into_iter().enumerate() {
                        if let Some(v) = v
                            && (v != StoredValue::Null || earlier.parsed.at(field).is_none())
                        {
                            earlier.parsed.values[field] = Some(v);
                        }
                    }
                    tally.merged += 1;
                }
                None => {
                    by_key.insert(value, merged.len());
                    merged.push(item);
                }
            }
        }
        let given: Vec<usize> = (0..schema.fields.len())
            .filter(|&f| merged.iter().any(|m| m.parsed.at(f).is_some()))
            .collect();
        // Read and written in one transaction, so what is compared is what is changed.
        let now = Utc::now();
        let guarded = self.scope(who, &schema.name, now)?.is_some();
        let txn = begin_write(&self.db.conn).await?;
        let stored = stored_by_key(&txn, schema, key_at, &given, &merged).await?;
        let reached: Option<HashSet<i64>> = if guarded {
            let ids: Vec<i64> = stored.values().map(|(id, _)| *id).collect();
            Some(self.reachable(&txn, who, &schema.name, &ids, now).await?)
        } else {
            None
        };
        let mut writes: Vec<(Option<i64>, &Pending)> = Vec::new();
        let mut deletes: Vec<i64> = Vec::new();
        for item in &merged {
            let value = item
                .parsed
                .at(key_at)
                .and_then(unique_key)
                .unwrap_or_default();
            let stored = stored.get(&value);
            if let (Some((id, _)), Some(reached)) = (stored, &reached)
                && !reached.contains(id)
            {
                tally.refuse(
                    rows,
                    item,
                    &ItemError::field(
                        key,
                        "outside_your_records",
                        format!(
                            "matches a {} record outside your record rights",
                            schema.name
                        ),
                    ),
                );
                continue;
            }
            match (stored, item.delete) {
                (Some((id, _)), true) => deletes.push(*id),
                (None, true) => tally.unchanged += 1,
                (Some((id, values)), false) => {
                    let same = item
                        .parsed
                        .given()
                        .all(|(f, v)| values.get(&f).is_some_and(|s| s == v));
                    if same {
                        tally.unchanged += 1;
                    } else {
                        writes.push((Some(*id), item));
                    }
                }
                (None, false) => match missing_required(schema, &item.parsed) {
                    Some(field) => tally.refuse(
                        rows,
                        item,
                        &ItemError::field(field, "required", "is required for a new record"),
                    ),
                    None => writes.push((None, item)),
                },
            }
        }
        let refused = self
            .check_writes(&txn, who, schema, rows, &writes, tally)
            .await?;
        let (creates, updates): (Vec<_>, Vec<_>) = writes
            .into_iter()
            .filter(|(_, item)| !refused.contains(&item.row))
            .partition(|(id, _)| id.is_none());
        tally.created += creates.len() as u64;
        let mut written: Vec<(&Pending, i64)> = Vec::new();
        if !creates.is_empty() {
            let parsed = creates.iter().map(|(_, p)| p.parsed.clone()).collect();
            let ids = self.insert_rows(&txn, schema, parsed).await?;
            if guarded {
                written.extend(creates.iter().map(|(_, p)| *p).zip(ids));
            }
        }
        let changes: Vec<(i64, &Parsed)> = updates
            .iter()
            .map(|(id, item)| (id.expect("updates have an id"), &item.parsed))
            .collect();
        let changed = self.update_rows(&txn, schema, &changes).await?;
        tally.updated += changed;
        if guarded {
            written.extend(
                updates
                    .iter()
                    .map(|(id, p)| (*p, id.expect("updates have an id"))),
            );
        }
        if changed < changes.len() as u64 {
            let ids: Vec<i64> = changes.iter().map(|(id, _)| *id).collect();
            let found = self
                .reachable(&txn, &Principal::system(), &schema.name, &ids, now)
                .await?;
            for (id, item) in &updates {
                let id = id.expect("updates have an id");
                if !found.contains(&id) {
                    tally.refuse(
                        rows,
                        item,
                        &ItemError::field(
                            key,
                            "deleted_meanwhile",
                            format!(
                                "{} {id} was deleted while the file was imported",
                                schema.name
                            ),
                        ),
                    );
                }
            }
        }
        for chunk in deletes.chunks(rows_per_statement(1)) {
            let mut q = Query::delete();
            q.from_table(col(&schema.name))
                .and_where(Expr::col(col("id")).is_in(chunk.iter().copied()));
            tally.deleted += txn.execute(&q).await?.rows_affected();
        }
        let outside = self.outside(&txn, who, &schema.name, &written, now).await?;
        if !outside.is_empty() {
            txn.rollback().await?;
            return Ok(outside);
        }
        txn.commit().await?;
        Ok(Vec::new())
    }

    /// The rows (with every row merged into them) whose written records the caller does not
    /// reach.
    async fn outside(
        &self,
        txn: &DatabaseTransaction,
        who: &Principal,
        entity: &str,
        written: &[(&Pending, i64)],
        now: chrono::DateTime<Utc>,
    ) -> Result<Vec<usize>> {
        if written.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<i64> = written.iter().map(|(_, id)| *id).collect();
        let reached = self.reachable(txn, who, entity, &ids, now).await?;
        Ok(written
            .iter()
            .filter(|(_, id)| !reached.contains(id))
            .flat_map(|(p, _)| std::iter::once(p.row).chain(p.also.iter().copied()))
            .collect())
    }

    /// Updates records by id with their given fields, a chunk of records per statement rather
    /// than one statement each: rows that give no empty value share one statement whose empty
    /// places keep the stored value; rows that clear fields go in groups of the same fields.
    /// Returns how many records were changed.
    async fn update_rows(
        &self,
        txn: &DatabaseTransaction,
        schema: &EntitySchema,
        items: &[(i64, &Parsed)],
    ) -> Result<u64> {
        let mut keeping: Vec<(i64, &Parsed)> = Vec::new();
        let mut clearing: HashMap<Vec<bool>, Vec<(i64, &Parsed)>> = HashMap::new();
        for &(id, parsed) in items {
            if parsed.given().any(|(_, v)| *v == StoredValue::Null) {
                let mask = parsed.values.iter().map(Option::is_some).collect();
                clearing.entry(mask).or_default().push((id, parsed));
            } else {
                keeping.push((id, parsed));
            }
        }
        let mut changed = 0;
        if !keeping.is_empty() {
            changed += self.update_chunked(txn, schema, &keeping, true).await?;
        }
        for group in clearing.values() {
            changed += self.update_chunked(txn, schema, group, false).await?;
        }
        Ok(changed)
    }

    /// One `UPDATE … FROM` per chunk. With `keep_missing`, a field an item does not give keeps
    /// its stored value (`COALESCE`); otherwise every item gives the same fields.
    async fn update_chunked(
        &self,
        txn: &DatabaseTransaction,
        schema: &EntitySchema,
        items: &[(i64, &Parsed)],
        keep_missing: bool,
    ) -> Result<u64> {
        let columns: Vec<usize> = (0..schema.fields.len())
            .filter(|&f| items.iter().any(|(_, p)| p.at(f).is_some()))
            .collect();
        if columns.is_empty() {
            return Ok(0);
        }
        let backend = txn.get_database_backend();
        let table = &schema.name;
        let mut set = String::new();
        for (n, &f) in columns.iter().enumerate() {
            let key = &schema.fields[f].key;
            if keep_missing {
                set.push_str(&format!(
                    "\"{key}\" = COALESCE(v.v{n}, \"{table}\".\"{key}\"), "
                ));
            } else {
                set.push_str(&format!("\"{key}\" = v.v{n}, "));
            }
        }
        let names: Vec<String> = (0..columns.len()).map(|n| format!("v{n}")).collect();
        let now = Value::ChronoDateTimeUtc(Some(chrono::Utc::now()));
        let mut changed = 0;
        if backend == DbBackend::Postgres {
            // As inserts do: one array parameter per column, unnested by the server.
            let mut unnest = String::from("$1::bigint[]");
            for (n, &f) in columns.iter().enumerate() {
                unnest.push_str(&format!(
                    ", ${}::{}[]",
                    n + 2,
                    super::pg_type(schema.fields[f].ty.column_kind())
                ));
            }
            let sql = format!(
                "UPDATE \"{table}\" SET {set}\"updated_at\" = ${stamp}::timestamptz \
                 FROM UNNEST({unnest}) AS v(id, {names}) WHERE \"{table}\".\"id\" = v.id",
                stamp = columns.len() + 2,
                names = names.join(", ")
            );
            for chunk in items.chunks(10_000) {
                let ids = chunk
                    .iter()
                    .map(|(id, _)| id.to_string())
                    .collect::<Vec<_>>()
                    .join(",");
                let mut values = vec![Value::String(Some(format!("{{{ids}}}")))];
                for &f in &columns {
                    values.push(Value::String(Some(super::pg_array(
                        chunk.iter().map(|(_, p)| p.at(f)),
                    ))));
                }
                values.push(now.clone());
                changed += txn
                    .execute_raw(Statement::from_sql_and_values(backend, sql.clone(), values))
                    .await
                    .map_err(super::unique_violation)?
                    .rows_affected();
            }
            return Ok(changed);
        }
        let width = columns.len() + 1;
        for chunk in items.chunks(rows_per_statement(width)) {
            let mut sql = format!("WITH v(id, {}) AS (VALUES ", names.join(", "));
            let mut values = Vec::with_capacity(chunk.len() * width + 1);
            for (r, (id, parsed)) in chunk.iter().enumerate() {
                sql.push_str(if r == 0 { "(?" } else { ", (?" });
                values.push(Value::BigInt(Some(*id)));
                for &f in &columns {
                    sql.push_str(", ?");
                    let kind = schema.fields[f].ty.column_kind();
                    values.push(match parsed.at(f) {
                        Some(v) => to_sql(kind, v),
                        None => super::null_of(kind),
                    });
                }
                sql.push(')');
            }
            sql.push_str(&format!(
                ") UPDATE \"{table}\" SET {set}\"updated_at\" = ? FROM v WHERE \"{table}\".\"id\" = v.id"
            ));
            values.push(now.clone());
            changed += txn
                .execute_raw(Statement::from_sql_and_values(backend, sql, values))
                .await
                .map_err(super::unique_violation)?
                .rows_affected();
        }
        Ok(changed)
    }

    /// References and unique values of the rows about to be written (`None`: created);
    /// every refused row is rejected once, and the set of their row numbers returned.
    async fn check_writes(
        &self,
        txn: &DatabaseTransaction,
        who: &Principal,
        schema: &EntitySchema,
        rows: &[ImportRow],
        writes: &[(Option<i64>, &Pending)],
        tally: &mut Tally,
    ) -> Result<BTreeSet<usize>> {
        // The checks name items by index; lines are what people read, so lines are given.
        let by_line: HashMap<usize, &Pending> = writes
            .iter()
            .map(|(_, p)| (rows[p.row].line as usize, *p))
            .collect();
        let refuse = |errors: Vec<ItemError>, refused: &mut BTreeSet<usize>, tally: &mut Tally| {
            for error in errors {
                if let Some(item) = error.index.and_then(|line| by_line.get(&line))
                    && refused.insert(item.row)
                {
                    tally.refuse(rows, item, &error);
                }
            }
        };
        let mut refused = BTreeSet::new();
        let checked: Vec<(Option<usize>, &Parsed)> = writes
            .iter()
            .map(|(_, p)| (Some(rows[p.row].line as usize), &p.parsed))
            .collect();
        match self.check_references(txn, who, schema, &checked).await {
            Err(StorageError::Invalid(errors)) => refuse(errors, &mut refused, tally),
            other => other?,
        }
        let unique: Vec<(Option<usize>, Option<i64>, &Parsed)> = writes
            .iter()
            .filter(|(_, p)| !refused.contains(&p.row))
            .map(|(id, p)| (Some(rows[p.row].line as usize), *id, &p.parsed))
            .collect();
        match self.check_unique(txn, who, schema, &unique).await {
            Err(StorageError::Conflict(errors)) => refuse(errors, &mut refused, tally),
            other => other?,
        }
        Ok(refused)
    }

    /// History rows: a row whose `unique_by` fields equal a stored row's, or an earlier row's
    /// in the batch, is already there.
    async fn append(
        &self,
        who: &Principal,
        schema: &EntitySchema,
        unique_by: &[String],
        rows: &[ImportRow],
        pending: Vec<Pending>,
        tally: &mut Tally,
    ) -> Result<Vec<usize>> {
        let at: Vec<usize> = unique_by
            .iter()
            .map(|k| super::field_index(schema, k))
            .collect();
        let mut candidates = Vec::with_capacity(pending.len());
        for item in pending {
            let empty = at
                .iter()
                .find(|&&f| item.parsed.at(f).is_none_or(|v| *v == StoredValue::Null));
            if let Some(&f) = empty {
                tally.reject(
                    &rows[item.row],
                    &ItemError::field(
                        &schema.fields[f].key,
                        "empty_identity",
                        "is empty, so the row cannot be told from rows already stored",
                    ),
                );
            } else if let Some(field) = missing_required(schema, &item.parsed) {
                tally.reject(
                    &rows[item.row],
                    &ItemError::field(field, "required", "is required"),
                );
            } else {
                candidates.push(item);
            }
        }
        let txn = begin_write(&self.db.conn).await?;
        let mut seen = stored_identities(&txn, schema, &at, &candidates).await?;
        let mut fresh = Vec::with_capacity(candidates.len());
        for item in candidates {
            if !at.is_empty() && !seen.insert(identity(&at, &item.parsed)) {
                tally.unchanged += 1;
            } else {
                fresh.push(item);
            }
        }
        let writes: Vec<(Option<i64>, &Pending)> = fresh.iter().map(|p| (None, p)).collect();
        let refused = self
            .check_writes(&txn, who, schema, rows, &writes, tally)
            .await?;
        let kept: Vec<&Pending> = fresh.iter().filter(|p| !refused.contains(&p.row)).collect();
        tally.created += kept.len() as u64;
        if !kept.is_empty() {
            let inserts = kept.iter().map(|p| p.parsed.clone()).collect();
            let ids = self.insert_rows(&txn, schema, inserts).await?;
            let now = Utc::now();
            if self.scope(who, &schema.name, now)?.is_some() {
                let written: Vec<(&Pending, i64)> = kept.into_iter().zip(ids).collect();
                let outside = self.outside(&txn, who, &schema.name, &written, now).await?;
                if !outside.is_empty() {
                    txn.rollback().await?;
                    return Ok(outside);
                }
            }
        }
        txn.commit().await?;
        Ok(Vec::new())
    }

    /// Point-ledger rows go through the ledger, which keeps each transaction once and moves
    /// the balance with it; a transaction given twice in the batch is kept once too.
    async fn append_ledger(
        &self,
        who: &Principal,
        schema: &EntitySchema,
        rows: &[ImportRow],
        pending: Vec<Pending>,
        tally: &mut Tally,
    ) -> Result<Vec<usize>> {
        let identity_at = [
            super::field_index(schema, "source_system"),
            super::field_index(schema, "transaction_id"),
        ];
        let mut seen = BTreeSet::new();
        let mut complete = Vec::with_capacity(pending.len());
        let mut origin = Vec::with_capacity(pending.len());
        for item in pending {
            if let Some(field) = missing_required(schema, &item.parsed) {
                tally.reject(
                    &rows[item.row],
                    &ItemError::field(field, "required", "is required"),
                );
            } else if !seen.insert(identity(&identity_at, &item.parsed)) {
                tally.unchanged += 1;
            } else {
                origin.push(item.row);
                complete.push(item.parsed);
            }
        }
        let txn = begin_write(&self.db.conn).await?;
        let refs: Vec<(Option<usize>, &Parsed)> = complete
            .iter()
            .enumerate()
            .map(|(i, p)| (Some(i), p))
            .collect();
        let mut unknown = BTreeSet::new();
        if let Err(StorageError::Invalid(errors)) =
            self.check_references(&txn, who, schema, &refs).await
        {
            for error in errors {
                if let Some(index) = error.index
                    && unknown.insert(index)
                {
                    tally.reject(&rows[origin[index]], &error);
                }
            }
        }
        let (origin, complete): (Vec<usize>, Vec<Parsed>) = origin
            .into_iter()
            .zip(complete)
            .enumerate()
            .filter(|(i, _)| !unknown.contains(i))
            .map(|(_, pair)| pair)
            .unzip();
        let (results, errors) = self.insert_ledger(&txn, schema, &complete, true).await?;
        let now = Utc::now();
        if self.scope(who, &schema.name, now)?.is_some() {
            let fresh: Vec<&super::ItemResult> = results
                .iter()
                .filter(|r| r.status != ItemStatus::Existing)
                .collect();
            let ids: Vec<i64> = fresh.iter().map(|r| r.id).collect();
            let reached = self.reachable(&txn, who, &schema.name, &ids, now).await?;
            let outside: Vec<usize> = fresh
                .iter()
                .filter(|r| !reached.contains(&r.id))
                .map(|r| origin[r.index])
                .collect();
            if !outside.is_empty() {
                txn.rollback().await?;
                return Ok(outside);
            }
        }
        txn.commit().await?;
        for result in results {
            match result.status {
                ItemStatus::Existing => tally.unchanged += 1,
                _ => tally.created += 1,
            }
        }
        for error in errors {
            if let Some(index) = error.index {
                tally.reject(&rows[origin[index]], &error);
            }
        }
        Ok(Vec::new())
    }
}

/// The first required field a new record would lack.
fn missing_required<'a>(schema: &'a EntitySchema, parsed: &Parsed) -> Option<&'a str> {
    schema
        .fields
        .iter()
        .enumerate()
        .find(|(f, field)| field.required && parsed.at(*f).is_none_or(|v| *v == StoredValue::Null))
        .map(|(_, field)| field.key.as_str())
}

/// The values of the fields at `at`, as comparable text.
fn identity(at: &[usize], parsed: &Parsed) -> Vec<String> {
    at.iter()
        .map(|&f| parsed.at(f).and_then(unique_key).unwrap_or_default())
        .collect()
}

/// The stored values of the `given` fields of the records whose key the items carry, by key
/// text.
async fn stored_by_key<C: ConnectionTrait>(
    conn: &C,
    schema: &EntitySchema,
    key_at: usize,
    given: &[usize],
    items: &[Pending],
) -> Result<HashMap<String, (i64, HashMap<usize, StoredValue>)>> {
    let key = &schema.fields[key_at];
    let values: Vec<&StoredValue> = items.iter().filter_map(|p| p.parsed.at(key_at)).collect();
    let mut stored = HashMap::with_capacity(values.len());
    let backend = conn.get_database_backend();
    for chunk in values.chunks(super::among_chunk(backend)) {
        let mut q = Query::select();
        q.column(col("id")).column(col(&key.key));
        for &f in given {
            if f != key_at {
                q.column(col(&schema.fields[f].key));
            }
        }
        q.from(col(&schema.name)).and_where(super::among(
            backend,
            &key.key,
            key.ty.column_kind(),
            chunk,
        ));
        for row in conn.query_all(&q).await? {
            let id: i64 = row.try_get("", "id")?;
            let mut values = HashMap::with_capacity(given.len());
            let mut key_text = String::new();
            for &f in given.iter().chain(std::iter::once(&key_at)) {
                let field = &schema.fields[f];
                let json = decode(&row, field)?;
                // Stored values parse back to what they were; a value that no longer parses
                // (a field's options changed) counts as different.
                if let Ok(value) = field.parse(&json) {
                    if f == key_at {
                        key_text = unique_key(&value).unwrap_or_default();
                    }
                    values.insert(f, value);
                }
            }
            stored.insert(key_text, (id, values));
        }
    }
    Ok(stored)
}

/// The identities (values of the fields at `at`) of stored rows that share the first of them
/// with one of the items.
async fn stored_identities<C: ConnectionTrait>(
    conn: &C,
    schema: &EntitySchema,
    at: &[usize],
    items: &[Pending],
) -> Result<BTreeSet<Vec<String>>> {
    let mut seen = BTreeSet::new();
    let Some(&first) = at.first() else {
        return Ok(seen);
    };
    let field = &schema.fields[first];
    let values: Vec<&StoredValue> = items.iter().filter_map(|p| p.parsed.at(first)).collect();
    let backend = conn.get_database_backend();
    for chunk in values.chunks(super::among_chunk(backend)) {
        let mut q = Query::select();
        for &f in at {
            q.column(col(&schema.fields[f].key));
        }
        q.from(col(&schema.name)).and_where(super::among(
            backend,
            &field.key,
            field.ty.column_kind(),
            chunk,
        ));
        for row in conn.query_all(&q).await? {
            let mut key = Vec::with_capacity(at.len());
            for &f in at {
                let field = &schema.fields[f];
                let value = field.parse(&decode(&row, field)?).ok();
                key.push(value.as_ref().and_then(unique_key).unwrap_or_default());
            }
            seen.insert(key);
        }
    }
    Ok(seen)
}

fn upsert_key(flow: &ImportFlow) -> Option<&str> {
    match &flow.action {
        Action::Upsert { key } => Some(key),
        Action::Append { .. } => None,
    }
}
