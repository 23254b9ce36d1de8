//! Who is in the segment of each `segment_enter` flow, as last seen: the difference with the
//! segment now is who has just started (and stopped) matching.

use sea_orm_migration::prelude::*;

use super::columns::big;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table("sys_flow_members")
                .col(big("flow_id"))
                .col(big("contact_id"))
                .col(big("joined_at"))
                .primary_key(Index::create().col("flow_id").col("contact_id"))
                .take(),
        )
        .await?;
        Ok(())
    }
}
