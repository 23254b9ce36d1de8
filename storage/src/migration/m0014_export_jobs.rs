//! Scheduled exports (DI-4): saved jobs, the history of their runs, and one row per job and
//! due time so each scheduled run fires once however many workers run the scheduler.

use sea_orm_migration::prelude::*;

use super::columns::{big, id, text, text_null, time};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table("sys_export_jobs")
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
                .name("sys_export_jobs_key")
                .table("sys_export_jobs")
                .col("key")
                .unique()
                .take(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table("sys_exports")
                .col(id())
                .col(text("job_key"))
                .col(text("entity"))
                // The job as it ran: which records, which columns, where to.
                .col(text("definition"))
                .col(text("file_name"))
                .col(text("destination"))
                .col(big("due_at"))
                .col(text("status"))
                .col(text_null("error"))
                .col(big("rows_written"))
                .col(big("file_bytes"))
                .col(text("file_sha256"))
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
                .name("sys_exports_job")
                .table("sys_exports")
                .col("job_key")
                .col("id")
                .take(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table("sys_export_ticks")
                .col(text("job_key"))
                .col(big("tick_at"))
                .col(big("fired_at"))
                .primary_key(Index::create().col("job_key").col("tick_at"))
                .take(),
        )
        .await?;
        Ok(())
    }
}
