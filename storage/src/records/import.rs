//! Rows of an import flow written as records: a bad row is rejected with its line and reason,
//! the good rows of the batch are committed together, and a row that changes nothing writes
//! nothing, so the same file imported twice leaves the data as it was.

use std::collections::{BTreeSet, HashMap};

use sea_orm::sea_query::{Expr, ExprTrait, Query};
use sea_orm::{ConnectionTrait, TransactionTrait};
use serde::Serialize;
use serde_json::{Map, Value as Json};
use tabiji_model::import::{Action, ImportFlow};
use tabiji_model::schema::EntityKind;
use tabiji_model::{EntitySchema, FieldType, Op, StoredValue};

use super::{
    ItemStatus, Mode, Parsed, Store, col, decode, forbidden, key_index, rows_per_statement, to_sql,
    unique_key,
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
        self.rejected.push(Rejected {
            line: row.line,
            field: error.field.clone(),
            reason: match &error.field {
                Some(field) => format!("{field}: {}", error.message),
                None => error.message.clone(),
            },
            raw: row.raw.clone(),
        });
    }
}

/// A row that parsed, on its way to being written.
struct Pending {
    row: usize,
    parsed: Parsed,
    delete: bool,
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
        if let Some(link) = &flow.link {
            let schema = self.entity(&flow.entity).await?;
            if let Some(FieldType::Reference { entity }) = schema.field(&link.field).map(|f| &f.ty)
            {
                self.require(who, entity, Op::View).await?;
            }
        }
        Ok(())
    }

    /// Writes one batch of an import flow's rows; the flow was checked and
    /// [`Store::require_import`] passed. The good rows are committed together.
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
            self.resolve_links(flow, &mut rows, &mut rejected_rows, &mut tally)
                .await?;
        }
        let keys = key_index(&schema);
        let mut pending = Vec::with_capacity(rows.len());
        for (i, row) in rows.iter().enumerate() {
            if rejected_rows[i] {
                continue;
            }
            let mut values = row.values.clone();
            for (field, value) in &flow.constants {
                values.insert(field.clone(), Json::String(value.clone()));
            }
            match Self::parse_item(
                who,
                &schema,
                &keys,
                &Json::Object(values),
                Mode::Update,
                None,
            )? {
                Ok(parsed) => pending.push(Pending {
                    row: i,
                    parsed,
                    delete: row.delete,
                }),
                Err(errors) => {
                    let error = &errors[0];
                    tally.reject(row, error);
                }
            }
        }
        match &flow.action {
            Action::Upsert { key } => {
                self.upsert(&schema, key, &rows, pending, &mut tally)
                    .await?
            }
            Action::Append { .. } if schema.kind == EntityKind::PointLedger => {
                self.append_ledger(&schema, &rows, pending, &mut tally)
                    .await?
            }
            Action::Append { unique_by } => {
                self.append(&schema, unique_by, &rows, pending, &mut tally)
                    .await?
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
        for chunk in values.chunks(rows_per_statement(1)) {
            let mut q = Query::select();
            q.column(col("id"))
                .column(col(&by.key))
                .from(col(&target))
                .and_where(
                    Expr::col(col(&by.key))
                        .is_in(chunk.iter().map(|v| to_sql(by.ty.column_kind(), v))),
                );
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

    async fn upsert(
        &self,
        schema: &EntitySchema,
        key: &str,
        rows: &[ImportRow],
        pending: Vec<Pending>,
        tally: &mut Tally,
    ) -> Result<()> {
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
                    for (field, v) in item.parsed.values.into_iter().enumerate() {
                        if let Some(v) = v {
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
        let stored = self.stored_by_key(schema, key_at, &given, &merged).await?;
        let mut creates: Vec<&Pending> = Vec::new();
        let mut updates: Vec<(i64, &Pending)> = Vec::new();
        let mut deletes: Vec<i64> = Vec::new();
        for item in &merged {
            let value = item
                .parsed
                .at(key_at)
                .and_then(unique_key)
                .unwrap_or_default();
            match (stored.get(&value), item.delete) {
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
                        updates.push((*id, item));
                    }
                }
                (None, false) => {
                    let missing = schema.fields.iter().enumerate().find(|(f, field)| {
                        field.required && item.parsed.at(*f).is_none_or(|v| *v == StoredValue::Null)
                    });
                    match missing {
                        Some((_, field)) => tally.reject(
                            &rows[item.row],
                            &ItemError::field(
                                &field.key,
                                "required",
                                "is required for a new record",
                            ),
                        ),
                        None => creates.push(item),
                    }
                }
            }
        }
        let txn = self.db.conn.begin().await?;
        let mut refused: BTreeSet<usize> = BTreeSet::new();
        let checked: Vec<(Option<usize>, &Parsed)> = creates
            .iter()
            .map(|p| (Some(p.row), &p.parsed))
            .chain(updates.iter().map(|(_, p)| (Some(p.row), &p.parsed)))
            .collect();
        if let Err(StorageError::Invalid(errors)) =
            self.check_references(&txn, schema, &checked).await
        {
            for error in errors {
                if let Some(row) = error.index {
                    refused.insert(row);
                    tally.reject(&rows[row], &error);
                }
            }
        }
        let unique: Vec<(Option<usize>, Option<i64>, &Parsed)> = creates
            .iter()
            .map(|p| (Some(p.row), None, &p.parsed))
            .chain(
                updates
                    .iter()
                    .map(|(id, p)| (Some(p.row), Some(*id), &p.parsed)),
            )
            .filter(|(row, _, _)| !row.is_some_and(|r| refused.contains(&r)))
            .collect();
        match self.check_unique(&txn, schema, &unique).await {
            Err(StorageError::Conflict(errors)) => {
                for error in errors {
                    if let Some(row) = error.index {
                        refused.insert(row);
                        tally.reject(&rows[row], &error);
                    }
                }
            }
            other => other?,
        }
        let creates: Vec<Parsed> = creates
            .into_iter()
            .filter(|p| !refused.contains(&p.row))
            .map(|p| p.parsed.clone())
            .collect();
        tally.created += creates.len() as u64;
        if !creates.is_empty() {
            self.insert_rows(&txn, schema, creates).await?;
        }
        for (id, item) in updates.iter().filter(|(_, p)| !refused.contains(&p.row)) {
            if self.update_row(&txn, schema, *id, &item.parsed).await? {
                tally.updated += 1;
            }
        }
        for chunk in deletes.chunks(rows_per_statement(1)) {
            let mut q = Query::delete();
            q.from_table(col(&schema.name))
                .and_where(Expr::col(col("id")).is_in(chunk.iter().copied()));
            tally.deleted += txn.execute(&q).await?.rows_affected();
        }
        txn.commit().await?;
        Ok(())
    }

    /// The stored values of the `given` fields of the records whose key the items carry,
    /// by key text.
    async fn stored_by_key(
        &self,
        schema: &EntitySchema,
        key_at: usize,
        given: &[usize],
        items: &[Pending],
    ) -> Result<HashMap<String, (i64, HashMap<usize, StoredValue>)>> {
        let key = &schema.fields[key_at];
        let values: Vec<StoredValue> = items
            .iter()
            .filter_map(|p| p.parsed.at(key_at).cloned())
            .collect();
        let mut stored = HashMap::with_capacity(values.len());
        for chunk in values.chunks(rows_per_statement(1)) {
            let mut q = Query::select();
            q.column(col("id")).column(col(&key.key));
            for &f in given {
                if f != key_at {
                    q.column(col(&schema.fields[f].key));
                }
            }
            q.from(col(&schema.name)).and_where(
                Expr::col(col(&key.key))
                    .is_in(chunk.iter().map(|v| to_sql(key.ty.column_kind(), v))),
            );
            for row in self.db.conn.query_all(&q).await? {
                let id: i64 = row.try_get("", "id")?;
                let mut values = HashMap::with_capacity(given.len());
                let mut key_text = String::new();
                for &f in given.iter().chain(std::iter::once(&key_at)) {
                    let field = &schema.fields[f];
                    let json = decode(&row, field)?;
                    // Stored values parse back to what they were; a value that no longer
                    // parses (a field's options changed) counts as different.
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

    /// History rows: a row whose `unique_by` fields equal a stored row's, or an earlier row's
    /// in the batch, is already there.
    async fn append(
        &self,
        schema: &EntitySchema,
        unique_by: &[String],
        rows: &[ImportRow],
        pending: Vec<Pending>,
        tally: &mut Tally,
    ) -> Result<()> {
        let at: Vec<usize> = unique_by
            .iter()
            .map(|k| super::field_index(schema, k))
            .collect();
        let identity = |parsed: &Parsed| -> Vec<String> {
            at.iter()
                .map(|&f| parsed.at(f).and_then(unique_key).unwrap_or_default())
                .collect()
        };
        let mut seen: BTreeSet<Vec<String>> = BTreeSet::new();
        if let Some(&first) = at.first() {
            let field = &schema.fields[first];
            let values: Vec<StoredValue> = pending
                .iter()
                .filter_map(|p| p.parsed.at(first).cloned())
                .collect();
            for chunk in values.chunks(rows_per_statement(1)) {
                let mut q = Query::select();
                for &f in &at {
                    q.column(col(&schema.fields[f].key));
                }
                q.from(col(&schema.name)).and_where(
                    Expr::col(col(&field.key))
                        .is_in(chunk.iter().map(|v| to_sql(field.ty.column_kind(), v))),
                );
                for row in self.db.conn.query_all(&q).await? {
                    let mut key = Vec::with_capacity(at.len());
                    for &f in &at {
                        let field = &schema.fields[f];
                        let value = field.parse(&decode(&row, field)?).ok();
                        key.push(value.as_ref().and_then(unique_key).unwrap_or_default());
                    }
                    seen.insert(key);
                }
            }
        }
        let mut fresh = Vec::new();
        for item in pending {
            if !at.is_empty() && !seen.insert(identity(&item.parsed)) {
                tally.unchanged += 1;
                continue;
            }
            let missing = schema.fields.iter().enumerate().find(|(f, field)| {
                field.required && item.parsed.at(*f).is_none_or(|v| *v == StoredValue::Null)
            });
            if let Some((_, field)) = missing {
                tally.reject(
                    &rows[item.row],
                    &ItemError::field(&field.key, "required", "is required"),
                );
                continue;
            }
            fresh.push(item);
        }
        let txn = self.db.conn.begin().await?;
        let checked: Vec<(Option<usize>, &Parsed)> =
            fresh.iter().map(|p| (Some(p.row), &p.parsed)).collect();
        let mut refused = BTreeSet::new();
        if let Err(StorageError::Invalid(errors)) =
            self.check_references(&txn, schema, &checked).await
        {
            for error in errors {
                if let Some(row) = error.index {
                    refused.insert(row);
                    tally.reject(&rows[row], &error);
                }
            }
        }
        let inserts: Vec<Parsed> = fresh
            .into_iter()
            .filter(|p| !refused.contains(&p.row))
            .map(|p| p.parsed)
            .collect();
        tally.created += inserts.len() as u64;
        if !inserts.is_empty() {
            self.insert_rows(&txn, schema, inserts).await?;
        }
        txn.commit().await?;
        Ok(())
    }

    /// Point-ledger rows go through the ledger, which keeps each transaction once and moves
    /// the balance with it.
    async fn append_ledger(
        &self,
        schema: &EntitySchema,
        rows: &[ImportRow],
        pending: Vec<Pending>,
        tally: &mut Tally,
    ) -> Result<()> {
        let mut complete = Vec::with_capacity(pending.len());
        let mut origin = Vec::with_capacity(pending.len());
        for item in pending {
            let missing = schema.fields.iter().enumerate().find(|(f, field)| {
                field.required && item.parsed.at(*f).is_none_or(|v| *v == StoredValue::Null)
            });
            match missing {
                Some((_, field)) => tally.reject(
                    &rows[item.row],
                    &ItemError::field(&field.key, "required", "is required"),
                ),
                None => {
                    origin.push(item.row);
                    complete.push(item.parsed);
                }
            }
        }
        let txn = self.db.conn.begin().await?;
        let (results, errors) = self.insert_ledger(&txn, schema, &complete, true).await?;
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
        Ok(())
    }
}

fn upsert_key(flow: &ImportFlow) -> Option<&str> {
    match &flow.action {
        Action::Upsert { key } => Some(key),
        Action::Append { .. } => None,
    }
}
