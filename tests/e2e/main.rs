//! End-to-end tests: one binary, one module per capability.

mod auth;
mod flows;
mod openapi;
mod records;
mod rights;
mod schema;
