//! Exports (CF-6, MA-11): every record a filter matches (a search, a segment, a static list,
//! an output table used as a list), read a page at a time in id order so that memory stays flat
//! however many records there are, with only the fields the caller may view. Files are written
//! at the edge (CSV, Shift_JIS CSV, XLSX); this is what goes in them.
//!
//! Rights: the export right on the entity, and the view of every field asked for. Each export is
//! in the access log when it starts (what was asked) and when it ends (how many records went out).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait, Order, Query};
use sea_orm::{ConnectionTrait, DbBackend};
use serde::Deserialize;
use serde_json::Value as Json;
use tabiji_model::filter::{Cond, Filter};
use tabiji_model::{EntitySchema, FieldDef, FieldType, Op};

use crate::auth::Principal;
use crate::error::{ItemError, Result, StorageError};
use crate::records::Store;
use crate::search::{Compiler, parse_zone};

/// Records read per query.
pub const PAGE: u64 = 5_000;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportRequest {
    /// Every record when left out; `{"segment": KEY}`, `{"list": KEY}` and
    /// `{"output_table": …}` export segments, lists and output tables.
    #[serde(default)]
    pub filter: Option<Filter>,
    /// The fields, in this order; every field the caller may view when left out.
    #[serde(default)]
    pub fields: Option<Vec<String>>,
    /// The zone relative dates in the filter are read in; Asia/Tokyo when left out.
    #[serde(default)]
    pub zone: Option<String>,
}

/// An export under way: its columns, and the next page to read.
pub struct Export {
    who: Principal,
    schema: Arc<EntitySchema>,
    fields: Vec<FieldDef>,
    cond: Cond,
    after: i64,
    done: bool,
    written: u64,
}

fn col(name: &str) -> sea_orm::sea_query::Alias {
    sea_orm::sea_query::Alias::new(name)
}

impl Store {
    /// Checks the rights and the request, logs the export and returns it, ready to read.
    pub async fn export(
        &self,
        who: &Principal,
        entity: &str,
        request: &ExportRequest,
        now: DateTime<Utc>,
    ) -> Result<Export> {
        let schema = self.entity_schema(entity).await?;
        self.require(who, entity, Op::View).await?;
        self.require(who, entity, Op::Export).await?;
        let readable = self.readable_fields(who, &schema);
        let fields: Vec<FieldDef> = match &request.fields {
            None => readable.into_iter().cloned().collect(),
            Some(keys) => {
                let mut chosen = Vec::with_capacity(keys.len());
                for (i, key) in keys.iter().enumerate() {
                    match schema.field(key) {
                        Some(f) if matches!(f.ty, FieldType::Password) => {
                            return Err(StorageError::invalid(ItemError::field(
                                &format!("fields[{i}]"),
                                "not_exportable",
                                format!("{key} is a password and is never exported"),
                            )));
                        }
                        Some(f) if who.rights.can_view_field(entity, key) => chosen.push(f.clone()),
                        Some(_) => {
                            return Err(StorageError::Forbidden {
                                entity: entity.into(),
                                op: Op::Export.name(),
                                field: Some(key.clone()),
                            });
                        }
                        None => {
                            return Err(StorageError::invalid(ItemError::field(
                                &format!("fields[{i}]"),
                                "unknown_field",
                                format!("{entity} has no field called {key}"),
                            )));
                        }
                    }
                }
                chosen
            }
        };
        let zone = parse_zone(request.zone.as_deref())?;
        let filter = request.filter.clone().unwrap_or(Filter::All(vec![]));
        let resolved = self
            .resolve_filter(Some(who), entity, &filter, zone, now)
            .await?;
        let keys: Vec<&str> = fields.iter().map(|f| f.key.as_str()).collect();
        self.log(
            who,
            "export",
            entity,
            None,
            "started",
            Some(format!(
                "fields: {}; filter: {}",
                keys.join(", "),
                serde_json::to_string(&filter).unwrap_or_default()
            )),
        )
        .await?;
        Ok(Export {
            who: who.clone(),
            schema,
            fields,
            cond: resolved.cond,
            after: 0,
            done: false,
            written: 0,
        })
    }
}

impl Export {
    /// The exported fields, in order (each row starts with the record's id before them).
    pub fn fields(&self) -> &[FieldDef] {
        &self.fields
    }

    pub fn entity(&self) -> &str {
        &self.schema.name
    }

    /// The next page of rows (`id`, then the fields, as JSON values), or `None` after the last.
    pub async fn next_page(&mut self, store: &Store) -> Result<Option<Vec<Vec<Json>>>> {
        if self.done {
            return Ok(None);
        }
        let entity = self.schema.name.as_str();
        let compiler = Compiler::new(store.db().backend(), &self.schema);
        let matches = compiler.cond(&self.cond);
        let mut q = Query::select();
        q.from(col(entity)).column(col("id"));
        for f in &self.fields {
            q.column(col(&f.key));
        }
        q.and_where(Expr::col(col("id")).gt(self.after));
        if store.db().backend() == DbBackend::Postgres {
            // As in search: the filter answered from its indexes, the page read by id.
            let mut ids = Query::select();
            ids.column(col("id"))
                .from(col(entity))
                .and_where(matches)
                .and_where(Expr::col(col("id")).gt(self.after))
                .order_by(col("id"), Order::Asc)
                .limit(PAGE);
            q.and_where(Expr::col(col("id")).in_subquery(ids));
        } else {
            q.and_where(matches);
        }
        q.order_by(col("id"), Order::Asc).limit(PAGE);
        let rows = store.db().conn.query_all(&q).await?;
        if (rows.len() as u64) < PAGE {
            self.done = true;
        }
        let mut page = Vec::with_capacity(rows.len());
        for row in &rows {
            let id: i64 = row.try_get("", "id")?;
            self.after = id;
            let mut values = Vec::with_capacity(self.fields.len() + 1);
            values.push(Json::from(id));
            for f in &self.fields {
                values.push(crate::records::decode(row, f)?);
            }
            page.push(values);
        }
        self.written += page.len() as u64;
        if page.is_empty() {
            return Ok(None);
        }
        Ok(Some(page))
    }

    /// Records in the access log how many records went out; `complete` is false when the
    /// reader stopped early (a download cancelled).
    pub async fn finish(self, store: &Store, complete: bool) -> Result<u64> {
        store
            .log(
                &self.who,
                "export",
                &self.schema.name,
                None,
                if complete { "ok" } else { "cancelled" },
                Some(format!("{} records", self.written)),
            )
            .await?;
        Ok(self.written)
    }
}
