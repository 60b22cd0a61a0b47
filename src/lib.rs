//! palaute: a batch ETL pipeline and Delta Lake warehouse for client feedback in Finnish social and
//! health services. Modules follow the data flow: config → source → format → normalize → privacy
//! → warehouse → ops (run, check, sql, history, demo, bench).

pub mod collections;
pub mod config;
pub mod demo;
pub mod extract;
pub mod format;
pub mod marts;
pub mod normalize;
pub mod ops;
pub mod privacy;
pub mod report;
pub mod schema;
pub mod source;
pub mod store;
pub mod warehouse;
