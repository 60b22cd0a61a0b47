//! Exit codes of the command line (the README's table) and the one mapping from an error to
//! its code.

use std::error::Error;

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

/// The exit code of one error, when its kind decides one (without looking at its causes).
fn of_one(e: &(dyn Error + 'static)) -> Option<i32> {
    use crate::warehouse::lease::LeaseError;
    if let Some(e) = e.downcast_ref::<super::run::RunError>() {
        return Some(e.exit_code());
    }
    if let Some(e) = e.downcast_ref::<super::aggregate::AggregateError>() {
        return Some(e.exit_code());
    }
    if let Some(e) = e.downcast_ref::<crate::report::ReportError>() {
        return Some(e.exit_code());
    }
    if let Some(e) = e.downcast_ref::<crate::extract::ExtractError>() {
        return Some(e.exit_code());
    }
    if let Some(e) = e.downcast_ref::<crate::serve::ServeError>() {
        return Some(e.exit_code());
    }
    if let Some(e) = e.downcast_ref::<super::sql::SqlError>() {
        return Some(e.exit_code());
    }
    if let Some(e) = e.downcast_ref::<super::rollback::RollbackError>() {
        use super::rollback::RollbackError;
        return Some(match e {
            RollbackError::Target(_) => CONFIG,
            RollbackError::Warehouse(w) => w.exit_code(),
        });
    }
    if let Some(e) = e.downcast_ref::<super::template::TemplateError>() {
        use super::template::TemplateError;
        return Some(match e {
            TemplateError::Write { .. } => ENVIRONMENT,
            TemplateError::Schema(_) | TemplateError::Language(_) => CONFIG,
        });
    }
    if let Some(super::bench::BenchError::Usage(_)) = e.downcast_ref() {
        return Some(CONFIG);
    }
    if let Some(e) = e.downcast_ref::<LeaseError>() {
        return Some(match e {
            LeaseError::Held { .. } => LEASE,
            LeaseError::Warehouse(w) => w.exit_code(),
        });
    }
    if let Some(e) = e.downcast_ref::<crate::warehouse::WarehouseError>() {
        return Some(e.exit_code());
    }
    if e.is::<crate::config::ConfigError>() {
        return Some(CONFIG);
    }
    if e.is::<crate::store::StoreError>()
        || e.is::<crate::source::SourceError>()
        || e.is::<std::io::Error>()
    {
        return Some(ENVIRONMENT);
    }
    None
}

/// The exit code of an error: that of the outermost error in its cause chain whose kind decides
/// one, else [`FAILURE`].
pub fn code_of(e: &(dyn Error + 'static)) -> i32 {
    let mut cur = Some(e);
    while let Some(e) = cur {
        if let Some(code) = of_one(e) {
            return code;
        }
        cur = e.source();
    }
    FAILURE
}

/// An error's text without the backtrace some libraries append to it (the Delta kernel does
/// when `RUST_BACKTRACE` is set): a user needs the message, a developer `RUST_LOG=debug`.
fn message(e: &(dyn Error + 'static)) -> String {
    let t = e.to_string();
    let cut = ["\n   0: ", "\nstack backtrace:", "\nBacktrace:"]
        .iter()
        .filter_map(|m| t.find(m))
        .min();
    match cut {
        Some(i) => t[..i].trim_end().to_string(),
        None => t,
    }
}

/// An error and its causes on one line, each cause named once: a cause whose text its outer
/// error already shows (`table x: <cause>`) is not repeated.
pub fn render(e: &(dyn Error + 'static)) -> String {
    let mut out = message(e);
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = message(c);
        if !t.is_empty() && !out.contains(&t) {
            out.push_str(": ");
            out.push_str(&t);
        }
        cur = c.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer: {0}")]
    struct Outer(#[source] std::io::Error);

    #[derive(Debug, thiserror::Error)]
    #[error("wrapped")]
    struct Wrapped(#[source] Outer);

    #[test]
    fn causes_decide_and_are_named_once() {
        let io = || std::io::Error::other("disk gone");
        assert_eq!(code_of(&Outer(io())), ENVIRONMENT);
        assert_eq!(code_of(&Wrapped(Outer(io()))), ENVIRONMENT);
        assert_eq!(render(&Wrapped(Outer(io()))), "wrapped: outer: disk gone");
        assert_eq!(code_of(&std::fmt::Error), FAILURE);
        let traced = std::io::Error::other("bad log\n   0: kernel::Error::with_backtrace\n   1: x");
        assert_eq!(render(&Outer(traced)), "outer: bad log");
        let cfg = crate::config::ConfigError::Invalid {
            path: "p.yaml".into(),
            message: "x".into(),
        };
        assert_eq!(code_of(&cfg), CONFIG);
    }
}
