//! Output tables of the SQL workspace: what each one holds and which fields it was made from.

use sea_orm_migration::prelude::*;

use super::columns::{big, id, text, text_null, time};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table("sys_output_tables")
                .col(id())
                .col(text("name"))
                .col(text("columns"))
                .col(big("row_count"))
                .col(text("reads"))
                .col(text("sql"))
                .col(text_null("description"))
                .col(text("created_by"))
                .col(time("created_at"))
                .col(time("updated_at"))
                .take(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("sys_output_tables_name")
                .table("sys_output_tables")
                .col("name")
                .unique()
                .take(),
        )
        .await?;
        Ok(())
    }
}
