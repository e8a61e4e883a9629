//! Child processes: start one, wait until its health check says SERVING, stop them all.
//!
//! No child outlives the Flow. Each child gets `PR_SET_PDEATHSIG(SIGKILL)` so that even a
//! SIGKILL of the Flow ends it; a normal stop sends SIGTERM (the child finishes its requests in
//! flight) and SIGKILL after a grace period; and dropping [`Processes`] kills what is left.

use std::collections::{BTreeMap, VecDeque};
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// Lines of a child's output kept for the error report when it fails to start.
const TAIL_LINES: usize = 20;
/// How long a stopping child may take to finish its requests before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// The descriptor number a child finds its inherited listening socket at (`--listen-fd`).
pub const INHERITED_LISTENER_FD: i32 = 3;

/// How to start one child and how to know it is ready.
#[derive(Debug)]
pub struct LaunchPlan {
    /// The name in messages (e.g. `encoder/shard-1`).
    pub label: String,
    pub program: PathBuf,
    pub args: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub cwd: Option<PathBuf>,
    pub port: u16,
    /// None: wait forever.
    pub timeout_ready: Option<Duration>,
    /// A socket already listening on `port`, handed to the child as [`INHERITED_LISTENER_FD`]:
    /// nothing can take the port between our choosing it and the child serving on it. Closed
    /// here once the child has it, so a dead child's port refuses connections at once.
    pub listener: Option<std::net::TcpListener>,
}

struct Running {
    label: String,
    child: Child,
    tail: Arc<Mutex<VecDeque<String>>>,
}

/// The children of one Flow.
#[derive(Default)]
pub struct Processes {
    children: Vec<Running>,
}

impl Processes {
    /// Starts every plan at once and waits until each is ready. If one fails, all are stopped
    /// and the error names the child, why, and the tail of its output.
    pub async fn start_all(mut plans: Vec<LaunchPlan>) -> Result<Processes, String> {
        let mut processes = Processes::default();
        for plan in &mut plans {
            let spawned = spawn(plan);
            plan.listener = None;
            match spawned {
                Ok(r) => processes.children.push(r),
                Err(e) => {
                    processes.stop().await;
                    return Err(e);
                }
            }
        }
        let waits = plans
            .iter()
            .zip(processes.children.iter_mut())
            .map(|(plan, running)| wait_ready(plan, running));
        let results = futures::future::join_all(waits).await;
        if let Some(Err(e)) = results.into_iter().find(|r| r.is_err()) {
            processes.stop().await;
            return Err(e);
        }
        Ok(processes)
    }

    /// SIGTERM to every child, then SIGKILL to those still running after the grace period.
    pub async fn stop(&mut self) {
        for r in &self.children {
            if let Some(pid) = r.child.id() {
                unsafe { libc::kill(pid as i32, libc::SIGTERM) };
            }
        }
        let deadline = Instant::now() + STOP_GRACE;
        for r in &mut self.children {
            let left = deadline.saturating_duration_since(Instant::now());
            if tokio::time::timeout(left, r.child.wait()).await.is_err() {
                tracing::warn!("{} did not stop in {:?}; killing it", r.label, STOP_GRACE);
                let _ = r.child.kill().await;
            }
        }
        self.children.clear();
    }
}

impl Drop for Processes {
    fn drop(&mut self) {
        for r in &mut self.children {
            let _ = r.child.start_kill();
        }
    }
}

fn spawn(plan: &LaunchPlan) -> Result<Running, String> {
    let mut cmd = Command::new(&plan.program);
    cmd.args(&plan.args)
        .envs(&plan.env)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    if let Some(dir) = &plan.cwd {
        cmd.current_dir(dir);
    }
    let parent = std::process::id() as libc::pid_t;
    let listener = plan.listener.as_ref().map(std::os::fd::AsRawFd::as_raw_fd);
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The parent may have died before prctl took effect.
            if libc::getppid() != parent {
                libc::_exit(1);
            }
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
    let mut child = cmd.spawn().map_err(|e| {
        format!(
            "{}: cannot start {}: {e}",
            plan.label,
            plan.program.display()
        )
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
    for stream in [out, err].into_iter().flatten() {
        let tail = tail.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stream).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                // Ignore a closed stderr: the relay must keep draining the child's pipe, or the
                // child blocks on its next log line.
                let _ = writeln!(std::io::stderr(), "{line}");
                let mut t = tail.lock().unwrap();
                if t.len() == TAIL_LINES {
                    t.pop_front();
                }
                t.push_back(line);
            }
        });
    }
    Ok(Running {
        label: plan.label.clone(),
        child,
        tail,
    })
}

async fn wait_ready(plan: &LaunchPlan, running: &mut Running) -> Result<(), String> {
    let start = Instant::now();
    loop {
        if let Ok(Some(status)) = running.child.try_wait() {
            tokio::time::sleep(Duration::from_millis(50)).await; // let the output readers catch up
            let tail: Vec<String> = running.tail.lock().unwrap().iter().cloned().collect();
            return Err(format!(
                "{} exited ({status}) before it was ready; its last output:\n  | {}",
                plan.label,
                tail.join("\n  | ")
            ));
        }
        if crate::grpc::check_serving("127.0.0.1", plan.port, Duration::from_millis(500))
            .await
            .is_ok()
        {
            return Ok(());
        }
        if plan.timeout_ready.is_some_and(|t| start.elapsed() > t) {
            return Err(format!(
                "{} was not ready within {:?} (timeout_ready)",
                plan.label,
                plan.timeout_ready.unwrap()
            ));
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// A socket listening on 127.0.0.1:`port` (0: any free port), to hand to a child.
pub fn listen_local(port: u16) -> Result<std::net::TcpListener, String> {
    std::net::TcpListener::bind(("127.0.0.1", port)).map_err(|e| match e.kind() {
        std::io::ErrorKind::AddrInUse => format!("port {port} is busy (address in use)"),
        _ => format!("cannot listen on 127.0.0.1:{port}: {e}"),
    })
}

/// A free TCP port on this machine (bound, then released for a child that binds it itself).
pub fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("cannot find a free port: {e}"))
}
