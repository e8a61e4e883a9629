//! Child processes: start one, wait until its health check says SERVING, supervise it (reap it
//! when it exits, say so, restart it with backoff), stop them all.
//!
//! No child outlives the Flow. Each child gets `PR_SET_PDEATHSIG(SIGKILL)` so that even a
//! SIGKILL of the Flow ends it; a normal stop sends SIGTERM (the child finishes its requests in
//! flight) and SIGKILL after a grace period; and dropping [`Processes`] kills what is left.

use super::{CopyKey, Slot, StartError};
use crate::flow::RestartPolicy;
use crate::health::Reporter;
use crate::net::listen_local;
use std::collections::{BTreeMap, VecDeque};
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::watch;

/// Lines of a child's output kept for the error report when it fails to start.
const TAIL_LINES: usize = 20;
/// How long a stopping child may take to finish its requests before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// The descriptor number a child finds its inherited listening socket at (`--listen-fd`).
pub(crate) const INHERITED_LISTENER_FD: i32 = 3;

/// How to start one child and how to know it is ready.
#[derive(Debug)]
pub(crate) struct LaunchPlan {
    /// The executor it is a copy of, and which copy (a reload stops copies by these).
    pub executor: String,
    pub slot: Slot,
    /// The name in messages (e.g. `encoder/shard-1`).
    pub label: String,
    pub program: PathBuf,
    pub args: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub port: u16,
    /// None: wait forever.
    pub timeout_ready: Option<Duration>,
    /// A socket already listening on `port`, handed to the child as [`INHERITED_LISTENER_FD`]:
    /// nothing can take the port between our choosing it and the child serving on it. Closed
    /// here once the child has it, so a dead child's port refuses connections at once.
    pub listener: Option<std::net::TcpListener>,
    /// Whether the Flow binds the child's port (again at each restart) and hands it over.
    pub hands_over_listener: bool,
    pub restart: RestartPolicy,
    /// Where the supervisor says whether the child is up.
    pub reporter: Reporter,
}

/// The first restart waits this long; each restart in a row doubles it, up to [`BACKOFF_MAX`].
const BACKOFF_FIRST: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// A child that served this long was not crash-looping: its next exit starts the backoff anew.
/// Short on purpose: the backoff is there for a child that cannot start or dies at once (a bad
/// config, a busy port), not to punish one that served and was killed.
const BACKOFF_RESET: Duration = Duration::from_secs(5);

/// How long a copy waits before it is started again.
#[derive(Default)]
struct Backoff {
    /// Restarts in a row without a healthy run in between.
    attempt: u32,
}

impl Backoff {
    /// The wait before restarting a copy that exited after serving for `uptime`.
    fn after_exit(&mut self, uptime: Duration) -> Duration {
        if uptime >= BACKOFF_RESET {
            self.attempt = 0;
        }
        self.after_failed_start()
    }

    /// The wait before trying again after a restart that did not get ready.
    fn after_failed_start(&mut self) -> Duration {
        self.attempt += 1;
        self.current()
    }

    fn current(&self) -> Duration {
        BACKOFF_FIRST
            .saturating_mul(1u32 << self.attempt.saturating_sub(1).min(16))
            .min(BACKOFF_MAX)
    }
}

/// One started child and the lines it printed last.
struct Running {
    child: Child,
    tail: Arc<Mutex<VecDeque<String>>>,
    /// The tasks relaying its stdout and stderr: they end when its pipes close.
    relays: Vec<tokio::task::JoinHandle<()>>,
}

/// How long the relays of an exited child get to read its pipes to the end: a process it
/// forked may hold them open for ever.
const OUTPUT_DRAIN: Duration = Duration::from_secs(1);

impl Running {
    fn last_lines(&self) -> Vec<String> {
        self.tail.lock().unwrap().iter().cloned().collect()
    }

    /// Waits (up to [`OUTPUT_DRAIN`]) until the relays read the exited child's last lines.
    async fn drain_output(&mut self) {
        let relays = futures::future::join_all(self.relays.drain(..));
        let _ = tokio::time::timeout(OUTPUT_DRAIN, relays).await;
    }
}

/// A child under supervision: its task owns the process; the pid is shared so that a drop can
/// kill it without waiting.
struct Supervised {
    key: CopyKey,
    pid: Arc<AtomicI32>,
    task: tokio::task::JoinHandle<()>,
    stop: watch::Sender<bool>,
}

/// The children of one Flow, each watched by its own supervisor task, which reaps it the
/// moment it exits, reports it down, and restarts it as its policy says.
#[derive(Default)]
pub(crate) struct Processes {
    children: Vec<Supervised>,
}

impl Processes {
    /// Starts every plan at once and waits until each is ready. If one fails, all are stopped
    /// and the error names the child, why, and the tail of its output. Each ready child is then
    /// supervised, reporting through the plan's [`Reporter`].
    pub(crate) async fn start_all(mut plans: Vec<LaunchPlan>) -> Result<Processes, StartError> {
        let mut started = vec![];
        for plan in &mut plans {
            let spawned = spawn(plan);
            plan.listener = None;
            match spawned {
                Ok(r) => started.push(r),
                Err(e) => {
                    stop_all(started).await;
                    return Err(e);
                }
            }
        }
        let waits = plans
            .iter()
            .zip(started.iter_mut())
            .map(|(plan, running)| wait_ready(plan, running));
        let results = futures::future::join_all(waits).await;
        if let Some(Err(e)) = results.into_iter().find(|r| r.is_err()) {
            stop_all(started).await;
            return Err(e);
        }
        let mut processes = Processes::default();
        for (plan, running) in plans.into_iter().zip(started) {
            let pid = Arc::new(AtomicI32::new(running.child.id().map_or(0, |p| p as i32)));
            let (stop, stopped) = watch::channel(false);
            let key = CopyKey {
                executor: plan.executor.clone(),
                slot: plan.slot,
                port: plan.port,
            };
            let task = tokio::spawn(supervise(plan, running, pid.clone(), stopped));
            processes.children.push(Supervised {
                key,
                pid,
                task,
                stop,
            });
        }
        Ok(processes)
    }

    /// SIGTERM to every child, then SIGKILL to those still running after the grace period.
    pub(crate) async fn stop(&mut self) {
        self.stop_where(|_| true).await;
    }

    /// Stops the copies `which` picks (a reload replacing or removing them), as
    /// [`Processes::stop`] does, and keeps the others.
    pub(crate) async fn stop_where(&mut self, which: impl Fn(&CopyKey) -> bool) {
        let (stopping, kept) = std::mem::take(&mut self.children)
            .into_iter()
            .partition::<Vec<_>, _>(|s| which(&s.key));
        self.children = kept;
        for s in &stopping {
            s.stop.send_replace(true);
        }
        for s in stopping {
            let _ = s.task.await;
        }
    }

    /// Takes over the children of `other` (copies a reload started).
    pub(crate) fn adopt(&mut self, mut other: Processes) {
        self.children.append(&mut other.children);
    }
}

impl Drop for Processes {
    fn drop(&mut self) {
        for s in &self.children {
            s.task.abort();
            let pid = s.pid.load(Ordering::SeqCst);
            if pid > 0 {
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
    }
}

/// Stops children that were started but never supervised (a Flow that failed to start).
async fn stop_all(mut started: Vec<Running>) {
    for r in &started {
        terminate(&r.child);
    }
    let deadline = Instant::now() + STOP_GRACE;
    for r in &mut started {
        finish(r, deadline).await;
    }
}

fn terminate(child: &Child) {
    if let Some(pid) = child.id() {
        unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    }
}

/// Waits for a terminated child until `deadline`, then kills it.
async fn finish(r: &mut Running, deadline: Instant) {
    let left = deadline.saturating_duration_since(Instant::now());
    if tokio::time::timeout(left, r.child.wait()).await.is_err() {
        tracing::warn!("a child did not stop in {STOP_GRACE:?}; killing it");
        let _ = r.child.kill().await;
    }
}

/// Watches one child until the Flow stops: reaps it when it exits, says so once with its exit
/// status and last output, marks it down, restarts it after a backoff (if its policy says so),
/// and marks it up again once the restart answers its health check.
async fn supervise(
    mut plan: LaunchPlan,
    mut running: Running,
    pid: Arc<AtomicI32>,
    mut stop: watch::Receiver<bool>,
) {
    let mut backoff = Backoff::default();
    let mut up_since = Instant::now();
    loop {
        let status = tokio::select! {
            status = running.child.wait() => status,
            _ = stopped(&mut stop) => {
                terminate(&running.child);
                finish(&mut running, Instant::now() + STOP_GRACE).await;
                return;
            }
        };
        pid.store(0, Ordering::SeqCst);
        running.drain_output().await;
        let exit = match status {
            Ok(s) => s,
            Err(e) => {
                tracing::error!("{}: cannot wait for it: {e}", plan.label);
                return;
            }
        };
        let restart = plan.restart.restarts_after(exit);
        let then = if restart {
            format!("restarting in {:?}", backoff.after_exit(up_since.elapsed()))
        } else {
            format!("not restarting (restart: {})", plan.restart.as_str())
        };
        let why = format!("exited ({exit}); {then}");
        plan.reporter.down(why.clone());
        tracing::error!(
            "{} {why}; its last output:\n  | {}",
            plan.label,
            running.last_lines().join("\n  | ")
        );
        if !restart {
            return;
        }
        // Restart until one is ready, waiting longer after each failure; a stop ends it all.
        loop {
            tokio::select! {
                _ = tokio::time::sleep(backoff.current()) => {}
                _ = stopped(&mut stop) => return,
            }
            match respawn(&mut plan) {
                Ok(r) => running = r,
                Err(e) => {
                    tracing::error!("{e}; retrying in {:?}", backoff.after_failed_start());
                    continue;
                }
            }
            pid.store(running.child.id().map_or(0, |p| p as i32), Ordering::SeqCst);
            let ready = tokio::select! {
                ready = wait_ready(&plan, &mut running) => ready,
                _ = stopped(&mut stop) => {
                    terminate(&running.child);
                    finish(&mut running, Instant::now() + STOP_GRACE).await;
                    return;
                }
            };
            match ready {
                Ok(()) => break,
                Err(e) => {
                    let _ = running.child.start_kill();
                    let _ = running.child.wait().await;
                    tracing::error!("{e}; retrying in {:?}", backoff.after_failed_start());
                }
            }
        }
        up_since = Instant::now();
        plan.reporter.up();
        tracing::info!("{} restarted and ready", plan.label);
    }
}

/// Resolves once the Flow stops.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Starts a plan's child again, on the same port (bound anew here when the Flow hands the
/// socket over).
fn respawn(plan: &mut LaunchPlan) -> Result<Running, StartError> {
    if plan.hands_over_listener {
        plan.listener = Some(
            listen_local(plan.port).map_err(|source| StartError::Listen {
                executor: plan.label.clone(),
                error: source,
            })?,
        );
    }
    let spawned = spawn(plan);
    plan.listener = None;
    spawned
}

fn spawn(plan: &LaunchPlan) -> Result<Running, StartError> {
    let mut cmd = Command::new(&plan.program);
    cmd.args(&plan.args)
        .envs(&plan.env)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    crate::procs::die_with_this_process(&mut cmd);
    let listener = plan.listener.as_ref().map(std::os::fd::AsRawFd::as_raw_fd);
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            // Our sockets are close-on-exec; the copy at INHERITED_LISTENER_FD must not be.
            let handed_over = match listener {
                Some(fd) if fd == INHERITED_LISTENER_FD => libc::fcntl(fd, libc::F_SETFD, 0) != -1,
                Some(fd) => libc::dup2(fd, INHERITED_LISTENER_FD) != -1,
                None => true,
            };
            if !handed_over {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().map_err(|source| StartError::Spawn {
        executor: plan.label.clone(),
        program: plan.program.clone(),
        error: source,
    })?;
    let tail = Arc::new(Mutex::new(VecDeque::with_capacity(TAIL_LINES)));
    let out = child
        .stdout
        .take()
        .map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Unpin + Send>);
    let err = child
        .stderr
        .take()
        .map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Unpin + Send>);
    let mut relays = vec![];
    for stream in [out, err].into_iter().flatten() {
        let tail = tail.clone();
        relays.push(tokio::spawn(async move {
            let mut lines = BufReader::new(stream).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                // A child's own `error: ...` line (what it says as it exits) is shown once, in
                // the Flow's message about its exit, which quotes its last lines.
                // Ignore a closed stderr: the relay must keep draining the child's pipe, or the
                // child blocks on its next log line.
                if !line.starts_with("error: ") {
                    let _ = writeln!(std::io::stderr(), "{line}");
                }
                let mut t = tail.lock().unwrap();
                if t.len() == TAIL_LINES {
                    t.pop_front();
                }
                t.push_back(line);
            }
        }));
    }
    Ok(Running {
        child,
        tail,
        relays,
    })
}

async fn wait_ready(plan: &LaunchPlan, running: &mut Running) -> Result<(), StartError> {
    let start = Instant::now();
    loop {
        if let Ok(Some(status)) = running.child.try_wait() {
            running.drain_output().await;
            return Err(StartError::ChildExited {
                executor: plan.label.clone(),
                status,
                last_lines: running.last_lines(),
            });
        }
        if crate::grpc::check_serving("127.0.0.1", plan.port, Duration::from_millis(500))
            .await
            .is_ok()
        {
            return Ok(());
        }
        if let Some(waited) = plan.timeout_ready.filter(|t| start.elapsed() > *t) {
            return Err(StartError::NotReady {
                executor: plan.label.clone(),
                waited,
            });
        }
        // Polls the health of a process that is starting: there is no event to wait for.
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_for_a_crash_loop_and_starts_anew_after_a_healthy_run() {
        let mut b = Backoff::default();
        let quick = Duration::from_millis(100);
        let waits: Vec<_> = (0..10).map(|_| b.after_exit(quick)).collect();
        assert_eq!(waits[0], Duration::from_millis(250));
        assert_eq!(waits[1], Duration::from_millis(500));
        assert_eq!(waits[2], Duration::from_secs(1));
        assert_eq!(waits[9], BACKOFF_MAX);
        assert_eq!(b.after_failed_start(), BACKOFF_MAX);
        // It served a while and was killed: no crash loop, restart at once again.
        assert_eq!(b.after_exit(BACKOFF_RESET), Duration::from_millis(250));
    }
}
