//! Test hooks: `PALAUTE_FAILPOINT=error:STAGE | crash:STAGE | sleep:STAGE:SECONDS |
//! skip:secondary-suppression | skip:case-mix-columns` makes an operation fail, die, pause or skip a step at a named
//! stage, for the integration tests of what happens then.
//!
//! They exist only in builds with the `test-hooks` feature, which the test suite enables (the
//! crate's dev-dependency on itself) and nothing else does: in the program users run, the
//! variable is not read at all. The test `test_hooks_are_absent_from_a_default_build` checks a
//! default build.

/// Whether this build has the test hooks.
pub const ENABLED: bool = cfg!(feature = "test-hooks");

/// At `stage`: `Err(failpoint)` when the test asks for an error there; a requested crash exits
/// at once (like `kill -9`: no clean-up), a requested sleep pauses the thread.
#[cfg(feature = "test-hooks")]
pub fn at(stage: &str) -> Result<(), String> {
    let Ok(fp) = std::env::var("PALAUTE_FAILPOINT") else {
        return Ok(());
    };
    if fp == format!("error:{stage}") {
        return Err(fp);
    }
    if fp == format!("crash:{stage}") {
        std::process::exit(86);
    }
    if let Some(secs) = fp
        .strip_prefix(&format!("sleep:{stage}:"))
        .and_then(|s| s.parse::<u64>().ok())
    {
        std::thread::sleep(std::time::Duration::from_secs(secs));
    }
    Ok(())
}

#[cfg(not(feature = "test-hooks"))]
#[inline(always)]
pub fn at(_stage: &str) -> Result<(), String> {
    Ok(())
}

/// Whether the test asks to skip `step` (`skip:STEP`).
#[cfg(feature = "test-hooks")]
pub fn skip(step: &str) -> bool {
    std::env::var("PALAUTE_FAILPOINT").is_ok_and(|fp| fp.strip_prefix("skip:") == Some(step))
}

#[cfg(not(feature = "test-hooks"))]
#[inline(always)]
pub fn skip(_step: &str) -> bool {
    false
}
