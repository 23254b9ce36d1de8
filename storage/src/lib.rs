//! Where tabiji keeps its data, and the one place that decides who may read or change it.
//!
//! # Layout
//! - [`db`]: connecting to SQLite (the embedded default) or PostgreSQL, with the pragmas and
//!   pool sizes each needs.
//! - [`migration`]: sea-orm-migration migrations, run on start and by `tabiji migrate`.
//! - [`entities`]: SeaORM entities of the system tables (`sys_*`: users, roles, tokens,
//!   sessions, access log, custom field and history store definitions).
//! - [`schemas`]: the live entity schemas: built-in fields plus the operator's custom fields
//!   and history stores, and the DDL that adds them.
//! - [`records`]: create, read, update, delete, one by one and in bulk, for every entity,
//!   with the caller's rights enforced on every field. Every feature reads and writes records
//!   through here, so none can bypass the rights.
//! - [`export`]: exports: the records a filter matches, a page at a time in id order, with the
//!   fields the caller may view.
//! - [`export_jobs`]: saved scheduled exports (DI-4) and the history of their runs; the files
//!   are made and delivered by the engine.
//! - [`saved`]: definitions saved under a key (import flows, export jobs), one table each.
//! - [`ticks`]: scheduled work fired once across workers, and whom it acts as.
//! - [`imports`]: saved import flows and the import history with each run's rejected rows;
//!   the rows themselves are written by [`records`] (`Store::import_rows`): rejected one by
//!   one, upserted by key, appended once.
//! - [`content`]: templates, parts and rhai snippets, with every version saved.
//! - [`flows`]: flow drafts, immutable published versions and their status.
//! - [`journeys`]: the engine's tables (runs, step log, outbox, events, entry cursors), a batch
//!   at a time, shared between workers by leases and compare-and-set.
//! - [`search`]: filters compiled to SQL for SQLite and PostgreSQL: sorted, keyset-paged,
//!   counted, with the caller's field rights applied to the filter itself.
//! - [`segments`]: saved segments, named filters that may draw on one another.
//! - [`lists`]: static lists: records added by id or by a filter, kept until removed.
//! - [`views`]: each user's own views: a filter, a date field and a period picked when opened,
//!   columns and sort (CF-4).
//! - [`actions`]: bulk actions (set, tag, delete) on the records a filter matches, previewed.
//! - [`analyses`]: decile, RFM and basket analyses (AN-3), written as SQL and run through the
//!   workspace's fences.
//! - [`aggregate`]: counts, sums, averages, minimums and maximums grouped by fields or date
//!   buckets (CF-10).
//! - [`reports`]: reports (records or messages, dimensions, measures, a chart type) and
//!   dashboards, evaluated with the viewer's rights.
//! - [`sql`]: batches of rows as one statement's row source on SQLite and PostgreSQL.
//! - [`workspace`]: the SQL workspace (MA-7, MA-9): read-only queries checked by an allow-list,
//!   over views that honour field rights, on connections the database keeps from writing;
//!   results kept as output tables.
//! - [`calculated`]: calculated attributes (DM-9): tourist fields kept from history stores,
//!   incrementally and by a daily batch.
//! - [`channels`]: the SMS, LINE and webhook channels administrators configure, their
//!   credentials sealed (the engine encrypts them before they get here).
//! - [`suppressions`]: addresses a channel must not send to (bounced, complained, or set by
//!   staff).
//! - [`secrets`]: keys the installation makes for itself (the tracking-link key), shared by
//!   every process.
//! - [`timeline`]: a record's timeline: its history rows and, for tourists, messages, events
//!   and flow runs, merged newest first.
//! - [`scope`]: record-level rights: the records of an entity a caller reaches, added to every
//!   filter and checked on every write.
//! - [`auth`]: users, roles, password hashing (argon2id), API tokens and browser sessions.
//! - [`audit`]: the access log.
//! - [`scratch`]: throw-away databases for tests and benchmarks.
//! - [`error`]: [`StorageError`], the boundary's one error type.

pub mod actions;
pub mod aggregate;
pub mod analyses;
pub mod audit;
pub mod auth;
pub mod calculated;
pub mod channels;
pub mod content;
pub mod db;
pub mod entities;
pub mod error;
pub mod export;
pub mod export_jobs;
pub mod flows;
pub mod imports;
pub mod journeys;
pub mod lists;
pub mod migration;
pub mod records;
pub mod reports;
pub mod saved;
pub mod schemas;
pub mod scope;
pub mod scratch;
pub mod search;
pub mod secrets;
pub mod segments;
pub mod sessions;
pub mod sql;
pub mod suppressions;
pub mod ticks;
pub mod timeline;
pub mod views;
pub mod workspace;

pub use auth::Principal;
pub use db::Db;
pub use error::{ItemError, StorageError};
pub use records::Store;
