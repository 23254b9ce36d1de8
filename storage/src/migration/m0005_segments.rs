//! Saved segments: a named filter over one entity, evaluated when used.

use sea_orm_migration::prelude::*;

use super::columns::{id, text, text_null, time};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table("sys_segments")
                .col(id())
                .col(text("key"))
                .col(text("name"))
                .col(text("entity"))
                .col(text("filter"))
                .col(text_null("description"))
                .col(text("created_by"))
                .col(time("created_at"))
                .col(time("updated_at"))
                .take(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("sys_segments_key")
                .table("sys_segments")
                .col("key")
                .unique()
                .take(),
        )
        .await?;
        Ok(())
    }
}
