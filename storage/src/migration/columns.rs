//! Column shapes the migrations share. Changing one changes nothing already migrated: a
//! migration's tables are created once.

use sea_orm_migration::prelude::*;

/// The auto-increment primary key every entity table has.
pub fn id() -> ColumnDef {
    ColumnDef::new("id")
        .big_integer()
        .not_null()
        .auto_increment()
        .primary_key()
        .take()
}

pub fn text(name: &str) -> ColumnDef {
    ColumnDef::new(name.to_string()).text().not_null().take()
}

pub fn text_null(name: &str) -> ColumnDef {
    ColumnDef::new(name.to_string()).text().null().take()
}

pub fn big(name: &str) -> ColumnDef {
    ColumnDef::new(name.to_string())
        .big_integer()
        .not_null()
        .take()
}

pub fn big_null(name: &str) -> ColumnDef {
    ColumnDef::new(name.to_string()).big_integer().null().take()
}

pub fn time(name: &str) -> ColumnDef {
    ColumnDef::new(name.to_string())
        .timestamp_with_time_zone()
        .not_null()
        .take()
}
