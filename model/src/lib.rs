//! The shared language of tabiji: what a record is made of and who may touch it.
//!
//! # Layout
//! - [`aggregate`]: groupings and measures of aggregates, as data.
//! - [`channel`]: the settings of the SMS, LINE and webhook channels administrators configure.
//! - [`clock`]: the [`clock::Clock`] every time-dependent decision is given.
//! - [`content`]: message templates, the parts they include and the rhai snippets that
//!   personalise them, as data.
//! - [`normalize`]: Japanese-aware text normalisation (full-width/half-width), e-mail, phone,
//!   postal code.
//! - [`field`]: field types, field definitions and the parsing of input values into typed,
//!   normalised [`field::StoredValue`]s.
//! - [`schema`]: the built-in entities (tourists, businesses, inquiries, …) and
//!   [`schema::EntitySchema`], which operator-defined fields extend.
//! - [`filter`]: filters users write to find records (segments, searches), resolved against
//!   the schema into conditions storage compiles to SQL.
//! - [`flow`]: scenarios as data (entry, nodes, exits) and their validation.
//! - `fuzz` (tests only): JSON shaped like flows and filters, for fuzzing their readers.
//! - [`export`]: scheduled exports (a file of records or of an aggregate, delivered to a
//!   folder or an SFTP server on a schedule) as data.
//! - [`import`]: import flows (partner files into records) as data, checked against the schema.
//! - [`rights`]: operations, per-field access and how the rights of several roles combine.
//! - [`schedule`]: cron expressions and friendly recurrences for scheduled flows (MA-3).
//! - [`zone`]: time zones by name or offset, with daylight saving resolved one way.
//!
//! Nothing here does I/O: the crate compiles for wasm32 so the editor shares it.

pub mod aggregate;
pub mod channel;
pub mod clock;
pub mod content;
pub mod export;
pub mod field;
pub mod filter;
pub mod flow;
#[cfg(test)]
mod fuzz;
pub mod import;
pub mod normalize;
pub mod rights;
pub mod schedule;
pub mod schema;
pub mod zone;

pub use field::{FieldDef, FieldError, FieldType, StoredValue};
pub use rights::{FieldAccess, Op, Rights};
pub use schema::{EntityKind, EntitySchema};
