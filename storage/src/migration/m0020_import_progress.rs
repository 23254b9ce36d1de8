//! An import run says how far into its file it has read, so a screen can draw its progress
//! while it runs: the bytes of the file behind the rows counted so far.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table("sys_imports")
                .add_column(
                    ColumnDef::new("bytes_read")
                        .big_integer()
                        .not_null()
                        .default(0)
                        .take(),
                )
                .take(),
        )
        .await
    }
}
