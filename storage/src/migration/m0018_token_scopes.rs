//! API tokens may carry a scope: a rights document that narrows their user's rights (a token
//! for a partner system that only grants points, say).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table("sys_api_tokens")
                .add_column(ColumnDef::new("scope").text().null().take())
                .take(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("sys_api_tokens_user")
                .table("sys_api_tokens")
                .col("user_id")
                .take(),
        )
        .await
    }
}
