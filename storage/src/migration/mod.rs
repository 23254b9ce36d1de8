//! Migrations, applied in order and recorded in `seaql_migrations`.
//!
//! A migration is never edited once released: changes to built-in entities arrive as new
//! migrations that alter the tables.

use sea_orm_migration::prelude::*;

mod columns;
mod m0001_system_tables;
mod m0002_builtin_entities;
mod m0003_flows;
mod m0004_runtime;
mod m0005_segments;
mod m0006_flow_members;
mod m0007_search_indexes;
mod m0008_output_tables;
mod m0009_reports;
mod m0010_lists_views;
mod m0011_calculated;
mod m0012_imports;
mod m0013_import_ticks;
mod m0014_export_jobs;
mod m0015_content;
mod m0016_channels;
mod m0017_sessions;
mod m0018_token_scopes;
mod m0019_contact_timeline;
mod m0020_import_progress;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m0001_system_tables::Migration),
            Box::new(m0002_builtin_entities::Migration),
            Box::new(m0003_flows::Migration),
            Box::new(m0004_runtime::Migration),
            Box::new(m0005_segments::Migration),
            Box::new(m0006_flow_members::Migration),
            Box::new(m0007_search_indexes::Migration),
            Box::new(m0008_output_tables::Migration),
            Box::new(m0009_reports::Migration),
            Box::new(m0010_lists_views::Migration),
            Box::new(m0011_calculated::Migration),
            Box::new(m0012_imports::Migration),
            Box::new(m0013_import_ticks::Migration),
            Box::new(m0014_export_jobs::Migration),
            Box::new(m0015_content::Migration),
            Box::new(m0016_channels::Migration),
            Box::new(m0017_sessions::Migration),
            Box::new(m0018_token_scopes::Migration),
            Box::new(m0019_contact_timeline::Migration),
            Box::new(m0020_import_progress::Migration),
        ]
    }
}

/// Applies every pending migration; returns how many were applied.
pub async fn run(db: &crate::Db) -> Result<usize, DbErr> {
    let pending = Migrator::get_pending_migrations(&db.conn).await?.len();
    Migrator::up(&db.conn, None).await?;
    Ok(pending)
}
