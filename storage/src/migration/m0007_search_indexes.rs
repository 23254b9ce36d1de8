//! Indexes for filters. Segments pick tourists mostly by place, gender and age or birthday, so
//! one index holds all three (and the id, so that PostgreSQL answers from the index alone).
//! Purchase indexes answer "spent more than X in a period" without reading the rows: by period
//! for everyone at once, by tourist for a few candidates. Every index slows bulk loading
//! (DM-1), so there are no more than these.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// (index, table, columns)
const INDEXES: &[(&str, &str, &[&str])] = &[
    (
        "tourists_demographics",
        "tourists",
        &["prefecture", "gender", "birth_date", "id"],
    ),
    ("businesses_prefecture", "businesses", &["prefecture"]),
    (
        "purchases_by_time",
        "purchases",
        &["occurred_at", "tourist_id", "amount"],
    ),
    (
        "purchases_by_tourist",
        "purchases",
        &["tourist_id", "occurred_at", "amount"],
    ),
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for (name, table, columns) in INDEXES {
            let mut index = Index::create();
            index.name(*name).table(*table).if_not_exists();
            for c in *columns {
                index.col(*c);
            }
            m.create_index(index).await?;
        }
        // The plain purchase indexes the covering ones replace.
        for old in ["purchases_occurred_at", "purchases_tourist_id"] {
            m.get_connection()
                .execute_unprepared(&format!("DROP INDEX IF EXISTS {old}"))
                .await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    /// Every field the model marks as indexed leads an index here: filters treat a test on it
    /// as one that narrows to few records.
    #[test]
    fn indexed_fields_lead_an_index() {
        for entity in tabiji_model::schema::builtin() {
            for field in entity.fields.iter().filter(|f| f.indexed) {
                assert!(
                    super::INDEXES
                        .iter()
                        .any(|(_, t, c)| *t == entity.name && c[0] == field.key),
                    "{}.{} is marked indexed but no index starts with it",
                    entity.name,
                    field.key
                );
            }
        }
    }
}
