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

/// Exit codes of the command line (documented in the README).
pub mod exit {
    /// the run failed for a reason not listed below
    pub const FAILURE: i32 = 1;
    /// bad configuration: unknown keys, items, codes or columns; an unusable command line
    pub const CONFIG: i32 = 2;
    /// more rows than the pipeline allows would be quarantined: nothing was written
    pub const QUALITY: i32 = 3;
    /// the environment failed: a source or the warehouse could not be read or written
    pub const ENVIRONMENT: i32 = 4;
    /// `audit-disclosure` recovered a suppressed value from what the marts publish
    pub const DISCLOSURE: i32 = 5;
    /// another run or operation holds the warehouse's writer lease: nothing was done
    pub const LEASE: i32 = 6;
}
