//! The `palaute` command line: a thin layer over the library's operations. [`try_main`]
//! dispatches each command to its function in `commands`; every error ends as one line on stderr
//! and the exit code [`exit::code_of`] gives it.

mod args;
mod commands;

use std::io::IsTerminal;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;

use args::{Cli, Cmd, LogFormat, UsageError};
use palaute::ops::exit;

/// jemalloc: a load allocates and frees many small values per row on two threads, which
/// glibc's allocator serves more slowly.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Run one command; its exit code.
async fn try_main(cli: Cli) -> anyhow::Result<i32> {
    use commands::{load, maintain, marts, publish, query, tools};
    match cli.cmd {
        Cmd::Run(a) => load::run(a).await,
        Cmd::Backfill(a) => load::backfill(a).await,
        Cmd::Check(a) => load::check(a).await,
        Cmd::Schedule(a) => load::schedule(a).await,
        Cmd::Aggregate(a) => marts::aggregate(a).await,
        Cmd::AuditDisclosure(a) => marts::audit(a).await,
        Cmd::Optimize(a) => maintain::optimize(a).await,
        Cmd::Rekey(a) => maintain::rekey(a).await,
        Cmd::Rollback(a) => maintain::rollback(a).await,
        Cmd::Vacuum(a) => maintain::vacuum(a).await,
        Cmd::Status(a) => query::status(a).await,
        Cmd::Sql(a) => query::sql(a).await,
        Cmd::History(a) => query::history(a).await,
        Cmd::Versions(a) => query::versions(a).await,
        Cmd::Report(a) => publish::report(a).await,
        Cmd::Extract(a) => publish::extract(a).await,
        Cmd::Demo(a) => tools::demo(a).await,
        Cmd::Generate(a) => tools::generate(a),
        Cmd::Template(a) => tools::template(a),
        Cmd::Bench(a) => tools::bench(a).await,
        Cmd::Serve(a) => publish::serve(a).await,
    }
}

fn init_logs(format: LogFormat) {
    let interactive = std::io::stderr().is_terminal();
    let default = if interactive { "warn" } else { "info" };
    // the Delta kernel logs, with a backtrace, each error it also returns to palaute, which
    // says it once: its own lines only with RUST_LOG
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(format!("palaute={default},warn,buoyant_kernel=off"))
    });
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    match format {
        LogFormat::Json => b.json().init(),
        LogFormat::Text => b.with_ansi(interactive).init(),
    }
}

/// The exit code of an error that ended a command: a bad command line, else what its kind and
/// causes decide ([`exit::code_of`]).
fn code_of(e: &anyhow::Error) -> i32 {
    if e.downcast_ref::<UsageError>().is_some() {
        exit::CONFIG
    } else {
        exit::code_of(e.as_ref())
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logs(cli.log_format);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime");
    let result = rt.and_then(|rt| rt.block_on(try_main(cli)));
    match result {
        Ok(code) => ExitCode::from(code as u8),
        Err(e) => {
            commands::say("", e.as_ref());
            ExitCode::from(code_of(&e) as u8)
        }
    }
}
