//! Calculated attributes: their definitions and how far each has been kept up to date.

use sea_orm_migration::prelude::*;

use super::columns::{big, big_null, id, text};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table("sys_calculated")
                .col(id())
                .col(text("key"))
                .col(text("definition"))
                // The highest store row id and the time already taken into account.
                .col(big("watermark_id"))
                .col(big("watermark_at"))
                .col(big_null("full_at"))
                .col(text("created_by"))
                .take(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("sys_calculated_key")
                .table("sys_calculated")
                .col("key")
                .unique()
                .take(),
        )
        .await?;
        Ok(())
    }
}
