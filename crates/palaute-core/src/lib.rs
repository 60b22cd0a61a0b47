//! palaute's light half: the stages before the warehouse, which need neither Arrow nor
//! DataFusion nor Delta Lake — a pipeline's configuration ([`config`]), the national schema and
//! code lists ([`schema`]), decoding exports into records ([`format`](mod@format)), mapping records to the
//! national schema ([`normalize`]), privacy at load ([`privacy`]) and the seeded demo and
//! benchmark data ([`demo`]). The `palaute` crate re-exports these modules under the same names
//! and adds the sources, the warehouse, the marts, reports, extracts and the operations; this
//! crate builds and tests in about a minute on its own.

pub mod config;
pub mod demo;
pub mod format;
pub mod normalize;
pub mod privacy;
pub mod schema;

/// The error underneath another: an error variant that wraps a library's failure keeps it as its
/// `#[source]`, so that `--log-format json` and `RUST_LOG=debug` show the whole cause chain.
pub type Cause = Box<dyn std::error::Error + Send + Sync>;
