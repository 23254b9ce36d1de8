use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "sys_flow_versions")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub flow_id: i64,
    #[sea_orm(primary_key, auto_increment = false)]
    pub version: i32,
    /// The published definition (JSON); never changed once written.
    pub definition: String,
    pub published_at: DateTimeUtc,
    pub published_by: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
