//! End-to-end tests: one binary, one module per capability.

mod auth;
mod channels;
mod contract;
mod denials;
mod editor;
mod email;
mod engine;
mod export_jobs;
mod exports;
mod faults;
mod flows;
mod imports;
mod limits;
mod lists;
mod openapi;
mod partners;
mod points;
mod records;
mod reports;
mod rights;
mod schema;
mod segments;
mod sessions;
mod sftp;
mod timeline;
mod workspace;
