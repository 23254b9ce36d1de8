//! The scenario engine's decisions: given a flow, where a run stands, what just happened and
//! the time, which actions to take and where the run stands next. Pure: no I/O, no clock of its
//! own; the runtime (issue 3, next steps) stores runs, fires timers, delivers events and carries
//! out the actions through an outbox.
//!
//! # Layout
//! - [`machine`]: [`machine::apply`], runs, inputs and actions.
//! - [`time`]: durations and times of day in a flow's zone.

pub mod machine;
pub mod time;

pub use machine::{Action, Finish, Input, Position, Run, apply};
