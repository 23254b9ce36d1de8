//! Message content (MA-1, MA-10): templates, parts and snippets, the current version of each
//! and every version ever saved; and the installation's own keys (tracking links, MA-6).

use sea_orm_migration::prelude::*;

use super::columns::{big, id, text, time};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table("sys_content")
                .col(id())
                .col(text("kind"))
                .col(text("key"))
                .col(big("version"))
                .col(text("definition"))
                .col(text("created_by"))
                .col(time("created_at"))
                .col(text("updated_by"))
                .col(time("updated_at"))
                .take(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("sys_content_key")
                .table("sys_content")
                .col("kind")
                .col("key")
                .unique()
                .take(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table("sys_content_versions")
                .col(id())
                .col(text("kind"))
                .col(text("key"))
                .col(big("version"))
                .col(text("definition"))
                .col(text("saved_by"))
                .col(time("saved_at"))
                .take(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("sys_content_versions_key")
                .table("sys_content_versions")
                .col("kind")
                .col("key")
                .col("version")
                .unique()
                .take(),
        )
        .await?;
        // Keys the installation makes for itself (the one that signs tracking links), shared
        // by every process through the database.
        m.create_table(
            Table::create()
                .table("sys_secrets")
                .col(text("name").primary_key())
                .col(text("value"))
                .col(time("created_at"))
                .take(),
        )
        .await?;
        Ok(())
    }
}
