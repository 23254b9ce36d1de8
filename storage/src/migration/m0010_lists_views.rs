//! Static lists and their members; each user's own views.

use sea_orm_migration::prelude::*;

use super::columns::{big, id, text, text_null, time};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table("sys_lists")
                .col(id())
                .col(text("key"))
                .col(text("name"))
                .col(text("entity"))
                .col(text_null("description"))
                .col(text("created_by"))
                .col(time("created_at"))
                .col(time("updated_at"))
                .take(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("sys_lists_key")
                .table("sys_lists")
                .col("key")
                .unique()
                .take(),
        )
        .await?;
        // The key is (list, record): a member once, and a list's members read in id order.
        m.create_table(
            Table::create()
                .table("sys_list_members")
                .col(big("list_id"))
                .col(big("record_id"))
                .col(time("added_at"))
                .primary_key(Index::create().col("list_id").col("record_id"))
                .take(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table("sys_views")
                .col(id())
                .col(text("owner"))
                .col(text("key"))
                .col(text("name"))
                .col(ColumnDef::new("favourite").boolean().not_null())
                .col(text("definition"))
                .col(time("created_at"))
                .col(time("updated_at"))
                .take(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("sys_views_owner_key")
                .table("sys_views")
                .col("owner")
                .col("key")
                .unique()
                .take(),
        )
        .await?;
        Ok(())
    }
}
