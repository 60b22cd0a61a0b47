//! The one integration-test binary: every test drives `palaute` the way a user does (the CLI on
//! real files, reading results back through `palaute sql`).

mod bench;
mod casemix;
mod common;
mod decoding;
mod demo;
mod exports;
mod extracts;
mod feedback;
mod formats;
mod hardening;
mod idempotency;
mod limesurvey;
mod mapping;
mod marts;
mod operations;
mod paper;
mod privacy;
mod properties;
mod reports;
mod resume;
mod s3;
mod schedule;
mod serve;
mod serve_pg;
mod transactions;
