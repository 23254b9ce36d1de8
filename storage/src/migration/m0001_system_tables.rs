//! The system tables: users, roles, tokens, sessions, access log, schema definitions.

use sea_orm_migration::prelude::*;

use super::columns::{id, text, time};

#[derive(DeriveMigrationName)]
pub struct Migration;

fn fk(from: &str, table: &str) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .from_col(from.to_string())
        .to(table.to_string(), "id")
        .on_delete(ForeignKeyAction::Cascade)
        .take()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table("sys_users")
                .col(id())
                .col(text("login").unique_key())
                .col(text("display_name"))
                .col(text("password_hash"))
                .col(
                    ColumnDef::new("is_admin")
                        .boolean()
                        .not_null()
                        .default(false),
                )
                .col(ColumnDef::new("active").boolean().not_null().default(true))
                .col(text("rights"))
                .col(time("created_at"))
                .col(time("updated_at"))
                .take(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table("sys_roles")
                .col(id())
                .col(text("name").unique_key())
                .col(text("description"))
                .col(text("rights"))
                .col(time("created_at"))
                .take(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table("sys_user_roles")
                .col(ColumnDef::new("user_id").big_integer().not_null())
                .col(ColumnDef::new("role_id").big_integer().not_null())
                .primary_key(Index::create().col("user_id").col("role_id"))
                .foreign_key(&mut fk("user_id", "sys_users"))
                .foreign_key(&mut fk("role_id", "sys_roles"))
                .take(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table("sys_api_tokens")
                .col(id())
                .col(ColumnDef::new("user_id").big_integer().not_null())
                .col(text("name"))
                .col(text("token_hash").unique_key())
                .col(time("created_at"))
                .col(
                    ColumnDef::new("expires_at")
                        .timestamp_with_time_zone()
                        .null(),
                )
                .col(
                    ColumnDef::new("last_used_at")
                        .timestamp_with_time_zone()
                        .null(),
                )
                .col(
                    ColumnDef::new("revoked")
                        .boolean()
                        .not_null()
                        .default(false),
                )
                .foreign_key(&mut fk("user_id", "sys_users"))
                .take(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table("sys_sessions")
                .col(id())
                .col(ColumnDef::new("user_id").big_integer().not_null())
                .col(text("token_hash").unique_key())
                .col(time("created_at"))
                .col(time("last_seen_at"))
                .col(time("expires_at"))
                .foreign_key(&mut fk("user_id", "sys_users"))
                .take(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table("sys_access_log")
                .col(id())
                .col(time("at"))
                .col(ColumnDef::new("user_id").big_integer().null())
                .col(text("login"))
                .col(text("action"))
                .col(ColumnDef::new("entity").text().null())
                .col(ColumnDef::new("record_id").big_integer().null())
                .col(text("outcome"))
                .col(ColumnDef::new("detail").text().null())
                .take(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("sys_access_log_at")
                .table("sys_access_log")
                .col("at")
                .take(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table("sys_field_defs")
                .col(id())
                .col(text("entity"))
                .col(text("key"))
                .col(text("definition"))
                .col(time("created_at"))
                .index(Index::create().unique().col("entity").col("key"))
                .take(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table("sys_history_stores")
                .col(id())
                .col(text("name").unique_key())
                .col(text("label"))
                .col(time("created_at"))
                .take(),
        )
        .await?;
        Ok(())
    }
}
