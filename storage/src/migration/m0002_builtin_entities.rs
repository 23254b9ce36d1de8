//! The built-in entity tables: tourists, businesses, inquiries and their responses, business
//! interactions, purchases and the point ledger.

use sea_orm_migration::prelude::*;

use crate::schemas::ddl;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for entity in tabiji_model::schema::builtin() {
            m.create_table(ddl::create_table(&entity)).await?;
            for index in ddl::indexes(&entity) {
                m.create_index(index).await?;
            }
        }
        m.create_index(
            Index::create()
                .name("point_ledger_source_transaction")
                .table("point_ledger")
                .col("source_system")
                .col("transaction_id")
                .unique()
                .take(),
        )
        .await?;
        Ok(())
    }
}
