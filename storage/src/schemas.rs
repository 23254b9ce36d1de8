//! The live schemas: the built-in entities plus what operators added (custom fields, history
//! stores), loaded from `sys_field_defs` / `sys_history_stores` and kept in memory.

use crate::db::begin_write;
use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::Utc;
use sea_orm::{ActiveModelTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryOrder, Set};
use tabiji_model::field::Label;
use tabiji_model::schema::{self, MAX_CUSTOM_FIELDS, check_identifier};
use tabiji_model::{EntitySchema, FieldDef, FieldType};

use crate::Db;
use crate::entities::{field_def, history_store};
use crate::error::{ItemError, Result, StorageError};

/// Every entity by name.
#[derive(Debug, Clone, Default)]
pub struct Schemas {
    entities: BTreeMap<String, Arc<EntitySchema>>,
}

impl Schemas {
    pub fn get(&self, name: &str) -> Result<Arc<EntitySchema>> {
        self.entities
            .get(name)
            .cloned()
            .ok_or_else(|| StorageError::UnknownEntity(name.to_string()))
    }

    pub fn find(&self, name: &str) -> Option<&EntitySchema> {
        self.entities.get(name).map(|e| &**e)
    }

    pub fn all(&self) -> impl Iterator<Item = &Arc<EntitySchema>> {
        self.entities.values()
    }

    pub async fn load(db: &Db) -> Result<Schemas> {
        let mut entities: BTreeMap<String, EntitySchema> = schema::builtin()
            .into_iter()
            .map(|e| (e.name.clone(), e))
            .collect();
        for store in history_store::Entity::find()
            .order_by_asc(history_store::Column::Id)
            .all(&db.conn)
            .await?
        {
            let label: Label = serde_json::from_str(&store.label).map_err(corrupt)?;
            entities.insert(
                store.name.clone(),
                schema::custom_history(&store.name, label),
            );
        }
        for def in field_def::Entity::find()
            .order_by_asc(field_def::Column::Id)
            .all(&db.conn)
            .await?
        {
            let field: FieldDef = serde_json::from_str(&def.definition).map_err(corrupt)?;
            if let Some(entity) = entities.get_mut(&def.entity) {
                entity.fields.push(field);
            }
        }
        Ok(Schemas {
            entities: entities
                .into_iter()
                .map(|(k, v)| (k, Arc::new(v)))
                .collect(),
        })
    }
}

fn corrupt(e: serde_json::Error) -> StorageError {
    StorageError::Database(sea_orm::DbErr::Custom(format!(
        "a stored schema definition cannot be read: {e}"
    )))
}

/// Checks an operator's new field for `entity` and returns it marked as custom.
pub fn check_custom_field(entity: &EntitySchema, mut field: FieldDef) -> Result<FieldDef> {
    let bad =
        |code, message: String| StorageError::invalid(ItemError::field(&field.key, code, message));
    check_identifier(&field.key).map_err(|m| bad("invalid_key", m))?;
    if entity.field(&field.key).is_some() {
        return Err(StorageError::Conflict(vec![ItemError::field(
            &field.key,
            "duplicate_field",
            format!("{} already has a field called {}", entity.name, field.key),
        )]));
    }
    if entity.custom_field_count() >= MAX_CUSTOM_FIELDS {
        return Err(bad(
            "too_many_fields",
            format!(
                "{} already has {MAX_CUSTOM_FIELDS} custom fields, the most it may have",
                entity.name
            ),
        ));
    }
    field
        .ty
        .check_definition()
        .map_err(|m| bad("invalid_definition", m))?;
    if field.label.ja.trim().is_empty() && field.label.en.trim().is_empty() {
        return Err(bad(
            "invalid_label",
            "give a label in Japanese or English".into(),
        ));
    }
    if field.unique
        && !matches!(
            field.ty,
            FieldType::Text { .. }
                | FieldType::Email
                | FieldType::Phone
                | FieldType::Integer { .. }
        )
    {
        return Err(bad(
            "invalid_definition",
            "only text, email, phone and integer fields can be unique".into(),
        ));
    }
    if field.required {
        // Existing records have no value for a new field, so it cannot be required of them.
        return Err(bad(
            "invalid_definition",
            "a new field cannot be required: existing records have no value for it".into(),
        ));
    }
    field.builtin = false;
    field.read_only = false;
    Ok(field)
}

/// Adds a custom field: its column, its index if unique, and its definition, in one transaction
/// where the database allows DDL in transactions (both SQLite and PostgreSQL do).
pub async fn add_custom_field(db: &Db, entity: &EntitySchema, field: FieldDef) -> Result<FieldDef> {
    let field = check_custom_field(entity, field)?;
    add_checked_field(db, entity, field).await
}

/// Adds a field only tabiji writes (a calculated attribute): read-only to every user.
pub async fn add_kept_field(db: &Db, entity: &EntitySchema, field: FieldDef) -> Result<FieldDef> {
    let mut field = check_custom_field(entity, field)?;
    field.read_only = true;
    add_checked_field(db, entity, field).await
}

async fn add_checked_field(db: &Db, entity: &EntitySchema, field: FieldDef) -> Result<FieldDef> {
    let txn = begin_write(&db.conn).await?;
    let backend = txn.get_database_backend();
    txn.execute_raw(backend.build(&ddl::add_column(&entity.name, &field)))
        .await?;
    if field.unique {
        txn.execute_raw(backend.build(&ddl::unique_index(&entity.name, &field.key)))
            .await?;
    }
    field_def::ActiveModel {
        entity: Set(entity.name.clone()),
        key: Set(field.key.clone()),
        definition: Set(serde_json::to_string(&field).expect("a field definition serialises")),
        created_at: Set(Utc::now()),
        ..Default::default()
    }
    .insert(&txn)
    .await?;
    txn.commit().await?;
    Ok(field)
}

/// Creates an operator-defined history store (DM-8) linked to tourists.
pub async fn add_history_store(
    db: &Db,
    schemas: &Schemas,
    name: &str,
    label: Label,
) -> Result<EntitySchema> {
    check_identifier(name)
        .map_err(|m| StorageError::invalid(ItemError::field("name", "invalid_name", m)))?;
    if schemas.get(name).is_ok() {
        return Err(StorageError::Conflict(vec![ItemError::field(
            "name",
            "duplicate_entity",
            format!("an entity called {name} exists already"),
        )]));
    }
    let entity = schema::custom_history(name, label.clone());
    let txn = begin_write(&db.conn).await?;
    let backend = txn.get_database_backend();
    txn.execute_raw(backend.build(&ddl::create_table(&entity)))
        .await?;
    for index in ddl::indexes(&entity) {
        txn.execute_raw(backend.build(&index)).await?;
    }
    history_store::ActiveModel {
        name: Set(name.to_string()),
        label: Set(serde_json::to_string(&label).expect("a label serialises")),
        created_at: Set(Utc::now()),
        ..Default::default()
    }
    .insert(&txn)
    .await?;
    txn.commit().await?;
    Ok(entity)
}

/// A fingerprint of the stored custom fields and history stores: it changes whenever any
/// process adds one, so others know to reload.
pub async fn stored_version(db: &Db) -> Result<String> {
    let fields = field_def::Entity::find().count(&db.conn).await?;
    let stores = history_store::Entity::find().count(&db.conn).await?;
    let last_field = field_def::Entity::find()
        .order_by_desc(field_def::Column::Id)
        .one(&db.conn)
        .await?
        .map_or(0, |f| f.id);
    let last_store = history_store::Entity::find()
        .order_by_desc(history_store::Column::Id)
        .one(&db.conn)
        .await?
        .map_or(0, |h| h.id);
    Ok(format!("{fields}/{last_field}/{stores}/{last_store}"))
}

/// Table DDL generated from entity schemas, shared by migrations and runtime schema changes.
pub mod ddl {
    use sea_orm::sea_query::{
        ColumnDef, ForeignKey, ForeignKeyAction, Index, IndexCreateStatement, Table,
        TableAlterStatement, TableCreateStatement,
    };
    use tabiji_model::field::ColumnKind;
    use tabiji_model::{EntitySchema, FieldDef};

    pub fn column(field: &FieldDef) -> ColumnDef {
        let mut col = ColumnDef::new(field.key.clone());
        match field.ty.column_kind() {
            ColumnKind::Text => col.text(),
            ColumnKind::BigInt => col.big_integer(),
            ColumnKind::Double => col.double(),
            ColumnKind::Bool => col.boolean(),
            ColumnKind::Date => col.date(),
            ColumnKind::Timestamp => col.timestamp_with_time_zone(),
        };
        if field.required {
            col.not_null();
        } else {
            col.null();
        }
        col
    }

    pub fn create_table(entity: &EntitySchema) -> TableCreateStatement {
        let mut table = Table::create();
        table.table(entity.name.clone()).col(
            ColumnDef::new("id")
                .big_integer()
                .not_null()
                .auto_increment()
                .primary_key(),
        );
        for field in &entity.fields {
            table.col(column(field));
        }
        table
            .col(
                ColumnDef::new("created_at")
                    .timestamp_with_time_zone()
                    .not_null(),
            )
            .col(
                ColumnDef::new("updated_at")
                    .timestamp_with_time_zone()
                    .not_null(),
            );
        if let Some(parent) = &entity.parent {
            table.foreign_key(
                ForeignKey::create()
                    .from(entity.name.clone(), parent.field.clone())
                    .to(parent.entity.clone(), "id")
                    .on_delete(ForeignKeyAction::Cascade),
            );
        }
        table
    }

    pub fn unique_index(table: &str, key: &str) -> IndexCreateStatement {
        Index::create()
            .name(format!("{table}_{key}_unique"))
            .table(table.to_string())
            .col(key.to_string())
            .unique()
            .take()
    }

    /// Unique fields, the parent link (with the time field for history), and the time field.
    pub fn indexes(entity: &EntitySchema) -> Vec<IndexCreateStatement> {
        let mut out: Vec<IndexCreateStatement> = entity
            .fields
            .iter()
            .filter(|f| f.unique)
            .map(|f| unique_index(&entity.name, &f.key))
            .collect();
        if let Some(parent) = &entity.parent {
            let mut index = Index::create();
            index
                .name(format!("{}_{}", entity.name, parent.field))
                .table(entity.name.clone())
                .col(parent.field.clone());
            if let Some(time) = &entity.time_field {
                index.col(time.clone());
            }
            out.push(index);
        }
        if let Some(time) = &entity.time_field {
            out.push(
                Index::create()
                    .name(format!("{}_{}", entity.name, time))
                    .table(entity.name.clone())
                    .col(time.clone())
                    .take(),
            );
        }
        out
    }

    pub fn add_column(table: &str, field: &FieldDef) -> TableAlterStatement {
        Table::alter()
            .table(table.to_string())
            .add_column(column(field))
            .take()
    }
}
