//! Import flows, the history of their runs (AN-1) and each run's rejected rows.

use sea_orm_migration::prelude::*;

use super::columns::{big, id, text, text_null, time};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table("sys_import_flows")
                .col(id())
                .col(text("key"))
                .col(text("entity"))
                .col(text("definition"))
                .col(text("created_by"))
                .col(time("created_at"))
                .col(time("updated_at"))
                .take(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("sys_import_flows_key")
                .table("sys_import_flows")
                .col("key")
                .unique()
                .take(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table("sys_imports")
                .col(id())
                .col(text("flow_key"))
                .col(text("entity"))
                // The flow as it was run: which columns went into which fields.
                .col(text("definition"))
                .col(text("file_name"))
                .col(text("file_sha256"))
                .col(big("file_bytes"))
                .col(text_null("encoding"))
                .col(text("status"))
                .col(text_null("error"))
                .col(big("rows_read"))
                .col(big("created"))
                .col(big("updated"))
                .col(big("unchanged"))
                .col(big("deleted"))
                .col(big("merged"))
                .col(big("rejected"))
                .col(text("started_by"))
                .col(time("started_at"))
                .col(
                    ColumnDef::new("finished_at")
                        .timestamp_with_time_zone()
                        .null(),
                )
                .take(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("sys_imports_flow")
                .table("sys_imports")
                .col("flow_key")
                .col("id")
                .take(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table("sys_import_rejects")
                .col(id())
                .col(big("import_id"))
                .col(big("line"))
                .col(text_null("field"))
                .col(text("reason"))
                .col(text("raw"))
                .take(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("sys_import_rejects_import")
                .table("sys_import_rejects")
                .col("import_id")
                .col("line")
                .take(),
        )
        .await?;
        Ok(())
    }
}
