//! Processes of ours: the process table, read from `/proc` (who is alive and who is whose
//! child: the guard finds everything below it, the tests check that nothing outlives a Flow),
//! and children that die with this process. A leaf: it knows nothing of what runs.

/// The fields of `/proc/<pid>/stat` we need.
struct Stat {
    state: char,
    ppid: u32,
    /// When the process started, in clock ticks after boot: with the pid, it names one
    /// process for good (a pid is reused, a pid and start time are not).
    start_ticks: u64,
}

fn stat(pid: u32) -> Option<Stat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // pid (comm) state ppid ...: comm may hold spaces, so read after the last ')'.
    let mut fields = text.rsplit_once(')')?.1.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    // Field 22 of stat; `state` was field 3.
    let start_ticks = fields.nth(17)?.parse().ok()?;
    Some(Stat {
        state,
        ppid,
        start_ticks,
    })
}

/// When live process `pid` started (clock ticks after boot), to tell it from a later process
/// that reuses its pid.
pub(crate) fn start_ticks(pid: u32) -> Option<u64> {
    stat(pid)
        .filter(|s| !matches!(s.state, 'Z' | 'X'))
        .map(|s| s.start_ticks)
}

/// Makes the child of `cmd` die (SIGKILL) when this process does (`PR_SET_PDEATHSIG`), and
/// exit at once if this process died before that took effect: a Flow's or a daemon's children
/// never outlive it, even when it is killed.
pub(crate) fn die_with_this_process(cmd: &mut tokio::process::Command) {
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if libc::getppid() != parent {
                libc::_exit(1);
            }
            Ok(())
        });
    }
}

/// Whether `pid` is a live process (not gone, not a zombie).
pub fn alive(pid: u32) -> bool {
    stat(pid).is_some_and(|s| !matches!(s.state, 'Z' | 'X'))
}

/// Live processes whose parent is `pid`.
pub fn children(pid: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return vec![];
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&p| stat(p).is_some_and(|s| s.ppid == pid && !matches!(s.state, 'Z' | 'X')))
        .collect()
}

/// Every live process below `pid`: its children, theirs, and so on.
pub fn descendants(pid: u32) -> Vec<u32> {
    let mut found = vec![];
    let mut next = vec![pid];
    while let Some(p) = next.pop() {
        for child in children(p) {
            found.push(child);
            next.push(child);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sees_a_child_and_its_end() {
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        let me = std::process::id();
        assert!(children(me).contains(&child.id()));
        assert!(descendants(me).contains(&child.id()));
        assert!(alive(child.id()));
        let mine = start_ticks(me).unwrap();
        assert!(start_ticks(child.id()).unwrap() >= mine);
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(!alive(child.id()));
    }
}
