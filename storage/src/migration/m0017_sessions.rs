//! Sessions that end for a reason (signed out, signed in elsewhere, ended by an administrator,
//! idle, password changed, account disabled) keep their row until the daily purge, so the
//! browser can be told why; where they were opened from, for the administrator's list.
//!
//! Failed sign-ins counted per login (existing or not, so a lock says nothing about which
//! logins exist), and indexes for searching the access log by who and by record.

use sea_orm_migration::prelude::*;

use super::columns::{big, text, time};

#[derive(DeriveMigrationName)]
pub struct Migration;

fn time_null(name: &str) -> ColumnDef {
    ColumnDef::new(name.to_string())
        .timestamp_with_time_zone()
        .null()
        .take()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // SQLite adds one column per ALTER TABLE.
        for column in [
            time_null("ended_at"),
            ColumnDef::new("ended_reason").text().null().take(),
            ColumnDef::new("ip").text().null().take(),
            ColumnDef::new("user_agent").text().null().take(),
        ] {
            m.alter_table(
                Table::alter()
                    .table("sys_sessions")
                    .add_column(column)
                    .take(),
            )
            .await?;
        }
        m.create_index(
            Index::create()
                .name("sys_sessions_user")
                .table("sys_sessions")
                .col("user_id")
                .take(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table("sys_login_failures")
                .col(text("login").primary_key())
                .col(big("failures"))
                .col(time("first_at"))
                .col(time_null("locked_until"))
                .take(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("sys_access_log_login")
                .table("sys_access_log")
                .col("login")
                .col("id")
                .take(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("sys_access_log_record")
                .table("sys_access_log")
                .col("entity")
                .col("record_id")
                .take(),
        )
        .await?;
        Ok(())
    }
}
