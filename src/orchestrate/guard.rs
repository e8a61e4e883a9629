//! The guard: a small process of our own between a Flow and a program that forks.
//!
//! `PR_SET_PDEATHSIG` ends a Flow's direct children even when the Flow is SIGKILLed, but it is
//! not inherited by their children. Python Jina's `jina executor` forks its worker, so killing
//! the Python process leaves that worker serving on its port, an orphan. The Flow therefore
//! starts such a program through `jina guard -- <program> <args>`, which:
//!
//! - becomes a *child subreaper*: whatever the program forks and leaves behind is re-parented
//!   to the guard instead of to init, so the guard can always find it;
//! - on SIGTERM or SIGINT (a normal stop, Ctrl-C, or the death of the Flow, which the guard
//!   asks to receive as SIGTERM) passes SIGTERM to every process below it, waits up to
//!   [`GUARD_GRACE`], then SIGKILLs what is left;
//! - when the program exits by itself, SIGKILLs what it left behind, and exits with its code.
//!
//! Everything stays in the Flow's process group, so a signal to that group (a terminal's
//! Ctrl-C, or a test harness killing the group) still reaches every process.
//!
//! With `--container NAME` the program is `docker run --name NAME ...`. The container is not
//! below the guard (the daemon runs it), so the guard also removes it by name: before the
//! program starts (one left by a CLI that was killed would hold the name and the port) and
//! after it ends, however it ends.
//!
//! It owns nothing else: no ports, no health checks (the Flow does those, through the program).

use std::ffi::OsString;
use std::time::{Duration, Instant};
use tokio::signal::unix::{SignalKind, signal};

/// How long the program may take to stop. Shorter than the Flow's own grace for the guard, so
/// the guard always gets to sweep before the Flow gives up on it.
pub(crate) const GUARD_GRACE: Duration = Duration::from_secs(4);

/// Whom the guard's life is tied to.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Parent {
    /// A Flow: when it dies, stop (as on SIGTERM).
    Flow,
    /// Whoever started `jina executor` by hand: it may go away (a closed shell, `nohup`)
    /// while the executor goes on serving.
    Independent,
}

/// Why the guard could not run its program.
#[derive(Debug, thiserror::Error)]
pub(crate) enum GuardError {
    #[error("jina guard: no program to run")]
    NoProgram,
    #[error("jina guard: the Flow is already gone")]
    FlowGone,
    #[error("jina guard: cannot listen for signals: {0}")]
    Signals(std::io::Error),
    #[error("cannot start {program}: {error}")]
    Spawn {
        program: String,
        error: std::io::Error,
    },
}

/// Runs `command` under guard and returns the exit code to leave with: the program's own when
/// it ends by itself, 0 when it was stopped because we were asked to stop.
pub(crate) async fn run(
    command: &[OsString],
    parent: Parent,
    container: Option<&str>,
) -> Result<i32, GuardError> {
    let (program, args) = command.split_first().ok_or(GuardError::NoProgram)?;
    let container: Vec<String> = container.into_iter().map(str::to_string).collect();
    crate::container::remove(&container);
    // SAFETY: plain syscalls with constant arguments.
    unsafe {
        let parent_pid = libc::getppid();
        libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1);
        if parent == Parent::Flow {
            // The Flow set PDEATHSIG to SIGKILL, which would leave no time to sweep.
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            if parent_pid == 1 {
                return Err(GuardError::FlowGone);
            }
        }
    }
    let mut terminate = signal(SignalKind::terminate()).map_err(GuardError::Signals)?;
    let mut interrupt = signal(SignalKind::interrupt()).map_err(GuardError::Signals)?;
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .spawn()
        .map_err(|error| GuardError::Spawn {
            program: program.to_string_lossy().into_owned(),
            error,
        })?;
    let status = tokio::select! {
        status = child.wait() => status.ok(),
        _ = terminate.recv() => None,
        _ = interrupt.recv() => None,
    };
    let deadline = Instant::now() + GUARD_GRACE;
    let asked_to_stop = status.is_none();
    let status = match status {
        Some(status) => Some(status),
        None => {
            signal_all_below(libc::SIGTERM);
            tokio::time::timeout(GUARD_GRACE, child.wait())
                .await
                .ok()
                .and_then(Result::ok)
        }
    };
    // The program is gone or out of time; give its forks the rest of the grace, then kill.
    while !below().is_empty() && Instant::now() < deadline {
        reap_orphans();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    signal_all_below(libc::SIGKILL);
    let _ = child.wait().await;
    let killed_at = Instant::now();
    while !below().is_empty() && killed_at.elapsed() < Duration::from_secs(2) {
        reap_orphans();
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    crate::container::remove(&container);
    // Stopped because we were asked to: that is success, whatever code the program chose.
    Ok(if asked_to_stop {
        0
    } else {
        status.and_then(|s| s.code()).unwrap_or(1)
    })
}

/// Live processes below the guard (its children and theirs; orphans come to it as well).
fn below() -> Vec<libc::pid_t> {
    crate::procs::descendants(std::process::id())
        .into_iter()
        .map(|pid| pid as libc::pid_t)
        .collect()
}

fn signal_all_below(signal: libc::c_int) {
    for pid in below() {
        // SAFETY: kill(2); an ESRCH (already gone) is fine.
        unsafe { libc::kill(pid, signal) };
    }
}

/// Collects the exit status of orphans that died as our children (a subreaper must).
fn reap_orphans() {
    // SAFETY: waitpid on any child, without blocking. It may also reap the program itself;
    // tokio's wait then reports an error, which is handled as "gone".
    unsafe { while libc::waitpid(-1, std::ptr::null_mut(), libc::WNOHANG) > 0 {} }
}
