//! SeaORM entities of the system tables. Entity tables (tourists, …) are schema-driven and
//! handled by [`crate::records`] instead, since operators add columns to them at run time.

pub mod access_log;
pub mod api_token;
pub mod field_def;
pub mod flow;
pub mod flow_version;
pub mod history_store;
pub mod login_failure;
pub mod role;
pub mod session;
pub mod user;
pub mod user_role;
