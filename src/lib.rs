//! palaute: a batch ETL pipeline and Delta Lake warehouse for client feedback in Finnish social and
//! health services. Modules follow the data flow: config → source → format → normalize → privacy
//! → warehouse → marts → report / extract / serve → ops (one file or folder per operation);
//! docs/architecture.md names the module of each stage.
//!
//! The stages that need no Arrow, DataFusion or Delta Lake (configuration, the national schema,
//! formats, normalization, privacy at load, demo data) are the `palaute-core` crate, re-exported
//! here under their names, so that they build and test on their own in about a minute.

pub use palaute_core::{Cause, config, demo, format, normalize, privacy, schema};

pub mod collections;
pub mod extract;
pub mod marts;
pub mod ops;
pub mod report;
pub mod serve;
pub mod source;
pub mod store;
pub mod warehouse;
