//! Reports and dashboards; an index that lets message reports find a delivery's opens and
//! clicks without reading every event.

use sea_orm_migration::prelude::*;

use super::columns::{id, text, text_null, time};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table("sys_reports")
                .col(id())
                .col(text("key"))
                .col(text("name"))
                .col(text_null("description"))
                .col(text("definition"))
                .col(text("created_by"))
                .col(time("created_at"))
                .col(time("updated_at"))
                .take(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table("sys_dashboards")
                .col(id())
                .col(text("key"))
                .col(text("name"))
                .col(text("widgets"))
                .col(text("created_by"))
                .col(time("created_at"))
                .col(time("updated_at"))
                .take(),
        )
        .await?;
        for (name, table, columns, unique) in [
            ("sys_reports_key", "sys_reports", &["key"][..], true),
            ("sys_dashboards_key", "sys_dashboards", &["key"][..], true),
            (
                "sys_events_delivery",
                "sys_events",
                &["delivery_id", "name"][..],
                false,
            ),
        ] {
            let mut index = Index::create();
            index.name(name).table(table);
            for c in columns {
                index.col(*c);
            }
            if unique {
                index.unique();
            }
            m.create_index(index.take()).await?;
        }
        Ok(())
    }
}
