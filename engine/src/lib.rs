//! The scenario engine. [`machine`] decides: given a flow, where a run stands, what just
//! happened and the time, which actions to take and where the run stands next; it does no I/O
//! and has no clock of its own. [`runtime`] acts: it stores runs, fires timers, applies events,
//! and carries the actions out through an outbox, a batch at a time.
//!
//! # Layout
//! - [`channels`]: the SMS, LINE and webhook channels administrators configure: credentials
//!   sealed under the master key, connectors rebuilt when settings change.
//! - [`export`]: scheduled exports: a job's file made from records or an aggregate and
//!   delivered to a folder or an SFTP server; the cells of every exported file.
//! - [`import`]: import pipelines: a file read by its flow (encoding, header, rows) and
//!   written in batches with the import history.
//! - [`machine`]: [`machine::apply`], runs, inputs and actions.
//! - [`personalise`]: templates rendered for a contact, with rhai snippets run in a sandbox.
//! - [`time`]: times of day and quiet hours in a flow's zone.
//! - [`runtime`]: schedule ticks, entries, timers, events, deliveries, calculated attributes
//!   and the worker loops.
//! - [`simulate`]: dry runs predicting how many contacts reach each node.
//! - [`transfer`]: the folders and SFTP credentials files travel through, as the operator
//!   set them.

pub mod channels;
pub mod export;
pub mod import;
pub mod machine;
pub mod personalise;
pub mod runtime;
pub mod simulate;
pub mod time;
pub mod transfer;

pub use machine::{Action, Finish, Input, Position, Run, apply};
pub use runtime::{Config, Runtime, RuntimeError};
