//! A tourist's timeline lists the flows they entered, newest first: the runs of one contact in
//! time order, which no earlier index answers (those lead with the flow or keep only waiting runs).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_index(
            Index::create()
                .name("sys_runs_contact_entered")
                .table("sys_runs")
                .col("contact_id")
                .col("entered_at")
                .take(),
        )
        .await
    }
}
