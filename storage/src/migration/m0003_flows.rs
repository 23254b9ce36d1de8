//! Flows: the editable draft and the immutable published versions.

use sea_orm_migration::prelude::*;

use super::columns::id;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table("sys_flows")
                .col(id())
                .col(ColumnDef::new("name").text().not_null())
                .col(ColumnDef::new("draft").text().not_null())
                .col(ColumnDef::new("status").text().not_null())
                .col(ColumnDef::new("current_version").integer().null())
                .col(
                    ColumnDef::new("created_at")
                        .timestamp_with_time_zone()
                        .not_null(),
                )
                .col(
                    ColumnDef::new("updated_at")
                        .timestamp_with_time_zone()
                        .not_null(),
                )
                .take(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table("sys_flow_versions")
                .col(ColumnDef::new("flow_id").big_integer().not_null())
                .col(ColumnDef::new("version").integer().not_null())
                .col(ColumnDef::new("definition").text().not_null())
                .col(
                    ColumnDef::new("published_at")
                        .timestamp_with_time_zone()
                        .not_null(),
                )
                .col(ColumnDef::new("published_by").text().not_null())
                .primary_key(Index::create().col("flow_id").col("version"))
                .foreign_key(
                    ForeignKey::create()
                        .from_col("flow_id")
                        .to("sys_flows", "id")
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .take(),
        )
        .await?;
        Ok(())
    }
}
