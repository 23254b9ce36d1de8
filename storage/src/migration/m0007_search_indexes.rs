//! Indexes for filters: the built-in fields segments most often pick few records by, and
//! purchase indexes that answer "spent more than X in a period" without reading the rows
//! (by period for everyone at once, by tourist for a few candidates).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for entity in tabiji_model::schema::builtin() {
            for field in entity.fields.iter().filter(|f| f.indexed) {
                m.create_index(
                    Index::create()
                        .name(format!("{}_{}", entity.name, field.key))
                        .table(entity.name.clone())
                        .col(field.key.clone())
                        .if_not_exists()
                        .take(),
                )
                .await?;
            }
        }
        // Covering replacements of the two plain purchase indexes, under new names: created
        // first, then the old ones go.
        for (name, columns) in [
            ("purchases_by_time", ["occurred_at", "tourist_id", "amount"]),
            (
                "purchases_by_tourist",
                ["tourist_id", "occurred_at", "amount"],
            ),
        ] {
            let mut index = Index::create();
            index.name(name).table("purchases").if_not_exists();
            for c in columns {
                index.col(c);
            }
            m.create_index(index).await?;
        }
        for old in ["purchases_occurred_at", "purchases_tourist_id"] {
            m.get_connection()
                .execute_unprepared(&format!("DROP INDEX IF EXISTS {old}"))
                .await?;
        }
        Ok(())
    }
}
