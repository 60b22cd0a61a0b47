//! `palaute schedule`: a long-running scheduler. It reads every pipeline in a folder and every
//! report definition in its `reports/` folder, runs each when its `schedule.cron` is due (in its
//! time zone), and notices added, changed and removed files without a restart. A due load goes
//! before a due report, and a report waits while a load it names (`after`) is due.
//!
//! Each run is a child `palaute run` process, so a run behaves exactly as from cron or Airflow
//! and its exit code says what happened: 0 done; 4 (environment: a source or the warehouse could
//! not be reached) and 6 (another writer holds the warehouse's lease) are transient and retried
//! with exponential backoff and jitter; 1, 2 (configuration) and 3 (data over the quality
//! threshold) are permanent and wait for the next due time. The warehouse's writer lease keeps
//! two schedulers, even on two machines, from running at once; one scheduler runs one pipeline
//! at a time (the most overdue first), so a pipeline never starts while its previous run is
//! going. On SIGTERM or SIGINT the scheduler starts no
//! more runs and gives the running ones a grace period to finish (a run stopped after it rolls
//! back; one killed at the end of the grace period is restored by the next run).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::Rng;

use crate::config::{self, Pipeline};

use super::exit;

#[derive(Debug, Clone)]
pub struct ScheduleOptions {
    pub pipelines: PathBuf,
    pub warehouse: String,
    /// retries of a transient failure before waiting for the next due time
    pub max_retries: u32,
    /// first backoff; doubled on every retry, with up to 50 % jitter
    pub backoff: Duration,
    pub grace: Duration,
}

/// What the scheduler runs: a pipeline's load, or a report definition's reports.
enum Job {
    Load(Box<Pipeline>),
    Report(Box<crate::report::definition::ReportDefinition>),
}

impl Job {
    fn schedule(&self) -> Option<&crate::config::Schedule> {
        match self {
            Job::Load(p) => p.schedule.as_ref(),
            Job::Report(d) => d.schedule.as_ref(),
        }
    }
}

struct Entry {
    job: Job,
    text: String,
    next_due: Option<DateTime<Utc>>,
    retries: u32,
}

struct Running {
    child: tokio::process::Child,
    name: String,
}

/// Read the folder: name → (job, file text): its pipelines, and the report definitions of its
/// `reports/` folder (named `report:NAME`). Files that do not load are logged and left out.
fn scan(dir: &Path) -> BTreeMap<String, (Job, String)> {
    let mut out = BTreeMap::new();
    if let Ok(files) = config::pipelines_in(&dir.join("reports")) {
        for f in files {
            let text = std::fs::read_to_string(&f).unwrap_or_default();
            match crate::report::definition::ReportDefinition::load(&f) {
                Ok(d) if d.schedule.is_some() => {
                    out.insert(
                        format!("report:{}", d.name),
                        (Job::Report(Box::new(d)), text),
                    );
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::error!(file = %f.display(), error = %e, "report not scheduled")
                }
            }
        }
    }
    let files = match config::pipelines_in(dir) {
        Ok(f) => f,
        Err(e) => {
            tracing::error!(error = %e, "cannot read the pipeline folder");
            return out;
        }
    };
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap_or_default();
        match config::load_pipeline(&f) {
            Ok(p) if p.schedule.is_some() => {
                out.insert(p.name.clone(), (Job::Load(Box::new(p)), text));
            }
            Ok(_) => {}
            Err(e) => tracing::error!(file = %f.display(), error = %e, "pipeline not scheduled"),
        }
    }
    out
}

fn next_due(j: &Job, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
    j.schedule().and_then(|s| s.next_after(after).ok())
}

fn transient(code: i32) -> bool {
    code == exit::ENVIRONMENT || code == exit::LEASE
}

/// Run the scheduler until SIGTERM or SIGINT: every tick, take in the changed pipeline files,
/// settle the finished runs, start the most overdue one; on a signal, wait for the running ones.
pub async fn schedule(o: &ScheduleOptions) -> std::io::Result<()> {
    let exe = std::env::current_exe()?;
    let mut entries: HashMap<String, Entry> = HashMap::new();
    let mut running: Vec<Running> = Vec::new();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    tracing::info!(folder = %o.pipelines.display(), "scheduler started");
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = tokio::signal::ctrl_c() => break,
            _ = term.recv() => break,
        }
        let now = Utc::now();
        rescan(o, &mut entries, now);
        running = settle(o, &mut entries, running)?;
        if running.is_empty()
            && let Some(r) = start_due(o, &exe, &mut entries, now)?
        {
            running.push(r);
        }
    }
    tracing::info!(
        running = running.len(),
        grace_seconds = o.grace.as_secs(),
        "stopping: no new runs; waiting for the running ones"
    );
    let deadline = tokio::time::Instant::now() + o.grace;
    for mut r in running {
        match tokio::time::timeout_at(deadline, r.child.wait()).await {
            Ok(_) => tracing::info!(pipeline = %r.name, "run finished"),
            Err(_) => {
                tracing::warn!(pipeline = %r.name, "grace period over: stopping the run (the next run restores the tables)");
                let _ = r.child.kill().await;
            }
        }
    }
    tracing::info!("scheduler stopped");
    Ok(())
}

/// Start the most overdue load, one run at a time (the warehouse has one writer); a report
/// waits while a load it names was due before it, so that it shows what that load brings (a
/// load due again later does not hold it back).
fn start_due(
    o: &ScheduleOptions,
    exe: &std::path::Path,
    entries: &mut HashMap<String, Entry>,
    now: DateTime<Utc>,
) -> std::io::Result<Option<Running>> {
    let due_loads: HashMap<String, DateTime<Utc>> = entries
        .iter()
        .filter(|(_, e)| matches!(e.job, Job::Load(_)))
        .filter_map(|(n, e)| e.next_due.filter(|d| *d <= now).map(|d| (n.clone(), d)))
        .collect();
    let Some((name, e)) = entries
        .iter_mut()
        .filter(|(_, e)| e.next_due.is_some_and(|d| d <= now))
        .filter(|(_, e)| match &e.job {
            Job::Load(_) => true,
            Job::Report(d) => !d.after.iter().any(|a| {
                due_loads
                    .get(a)
                    .is_some_and(|load_due| Some(*load_due) <= e.next_due)
            }),
        })
        .min_by_key(|(n, e)| (e.next_due, matches!(e.job, Job::Report(_)), (*n).clone()))
    else {
        return Ok(None);
    };
    let mut cmd = tokio::process::Command::new(exe);
    match &e.job {
        Job::Load(p) => cmd
            .args(["run", "--json", "--warehouse", &o.warehouse])
            .arg(&p.file),
        Job::Report(d) => cmd
            .args(["report", "--warehouse", &o.warehouse, "--definition"])
            .arg(&d.file),
    };
    let child = cmd
        .stdout(std::process::Stdio::null())
        // its own process group: a Ctrl-C or a service manager's SIGTERM to the
        // scheduler's group does not kill the run; the scheduler gives it the grace period
        .process_group(0)
        .kill_on_drop(false)
        .spawn()?;
    tracing::info!(pipeline = %name, "run started");
    // the next regular due time (a transient failure sets an earlier retry)
    e.next_due = next_due(&e.job, now);
    Ok(Some(Running {
        child,
        name: name.clone(),
    }))
}

/// Pick up added, changed and removed pipelines.
fn rescan(o: &ScheduleOptions, entries: &mut HashMap<String, Entry>, now: DateTime<Utc>) {
    let found = scan(&o.pipelines);
    entries.retain(|name, _| {
        let keep = found.contains_key(name);
        if !keep {
            tracing::info!(pipeline = %name, "pipeline removed: no longer scheduled");
        }
        keep
    });
    for (name, (p, text)) in found {
        let changed = entries.get(&name).is_none_or(|e| e.text != text);
        if changed {
            tracing::info!(pipeline = %name, "pipeline scheduled");
            let due = next_due(&p, now);
            entries.insert(
                name,
                Entry {
                    job: p,
                    text,
                    next_due: due,
                    retries: 0,
                },
            );
        }
    }
}

/// Settle the runs that finished: a success resets the retries, a transient failure is retried
/// after a backoff with jitter, any other waits for the next due time. Returns the runs still
/// running.
fn settle(
    o: &ScheduleOptions,
    entries: &mut HashMap<String, Entry>,
    running: Vec<Running>,
) -> std::io::Result<Vec<Running>> {
    let mut still = Vec::new();
    for mut r in running {
        match r.child.try_wait()? {
            None => still.push(r),
            Some(status) => {
                let code = status.code().unwrap_or(exit::FAILURE);
                let Some(e) = entries.get_mut(&r.name) else {
                    continue;
                };
                if code == 0 {
                    tracing::info!(pipeline = %r.name, "run succeeded");
                    e.retries = 0;
                } else if transient(code) && e.retries < o.max_retries {
                    e.retries += 1;
                    let base = o.backoff.as_secs_f64() * 2f64.powi(e.retries as i32 - 1);
                    let wait = base * (1.0 + rand::rng().random_range(0.0..0.5));
                    tracing::warn!(
                        pipeline = %r.name, exit = code, retry = e.retries,
                        seconds = wait, "transient failure: retrying"
                    );
                    e.next_due =
                        Some(Utc::now() + chrono::Duration::milliseconds((wait * 1000.0) as i64));
                } else {
                    tracing::error!(
                        pipeline = %r.name, exit = code,
                        "run failed: not retried, waiting for the next due time"
                    );
                    e.retries = 0;
                }
            }
        }
    }
    Ok(still)
}
