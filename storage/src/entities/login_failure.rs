use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "sys_login_failures")]
pub struct Model {
    /// The login as typed (at most 64 characters), whether or not a user has it.
    #[sea_orm(primary_key, auto_increment = false)]
    pub login: String,
    pub failures: i64,
    pub first_at: DateTimeUtc,
    pub locked_until: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
