//! User-visible operations, one file each: `run` (and its dry form behind `check`), `sql`,
//! `history`, `demo` and `bench`.

pub mod aggregate;
pub mod audit;
pub mod bench;
pub mod check;
pub mod demo;
pub mod history;
pub mod optimize;
pub mod rollback;
pub mod run;
pub mod schedule;
pub mod sql;
pub mod status;
pub mod template;
pub mod vacuum;

pub mod exit;
pub mod failpoint;
