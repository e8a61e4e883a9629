"""What bench/run.py and bench/soak.py share: ports, the driver, /proc readings, RESULTS.md.
The driver's path is the first argument of either script."""
import json
import os
import socket
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def driver(*args):
    """Runs bench/driver.rs (its path is argv[1]) and returns the JSON it prints last."""
    out = subprocess.run([sys.argv[1], *map(str, args)], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def cmdline(pid):
    """A process's command line, its arguments joined by spaces ('' when it is gone)."""
    try:
        return open(f'/proc/{pid}/cmdline', 'rb').read().replace(b'\0', b' ').decode()
    except OSError:
        return ''


def listener(port, pids):
    """Which of pids listens on TCP port (None if none does)."""
    inodes = set()
    for table in ('/proc/net/tcp', '/proc/net/tcp6'):
        try:
            for line in open(table).readlines()[1:]:
                fields = line.split()
                if int(fields[1].rsplit(':', 1)[1], 16) == port and fields[3] == '0A':
                    inodes.add(f'socket:[{fields[9]}]')
        except OSError:
            pass
    for pid in pids:
        try:
            if any(os.readlink(f'/proc/{pid}/fd/{fd}') in inodes for fd in os.listdir(f'/proc/{pid}/fd')):
                return pid
        except OSError:
            pass
    return None


def children(pid):
    """Live processes whose parent is pid."""
    found = []
    for entry in os.listdir('/proc'):
        if entry.isdigit():
            try:
                fields = open(f'/proc/{entry}/stat').read().rsplit(')', 1)[1].split()
                if int(fields[1]) == pid and fields[0] not in 'ZX':
                    found.append(int(entry))
            except (OSError, IndexError, ValueError):
                pass
    return found


def rss_mb(pid):
    try:
        for line in open(f'/proc/{pid}/status'):
            if line.startswith('VmRSS:'):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def memory_mb(pid):
    """A process's memory from /proc/PID/smaps_rollup, in MB: rss (every page it maps), pss
    (shared pages divided among the processes that map them) and private (its own pages
    alone: what it costs beyond the pages it shares)."""
    fields = {}
    try:
        for line in open(f'/proc/{pid}/smaps_rollup'):
            parts = line.split()
            if len(parts) == 3 and parts[2] == 'kB':
                fields[parts[0].rstrip(':')] = int(parts[1]) / 1024
    except OSError:
        pass
    return {'rss': fields.get('Rss', 0.0), 'pss': fields.get('Pss', 0.0),
            'private': fields.get('Private_Clean', 0.0) + fields.get('Private_Dirty', 0.0)}


def tree_rss_mb(pid):
    """Resident memory of a process and all its descendants."""
    total, stack = 0.0, [pid]
    while stack:
        p = stack.pop()
        stack.extend(children(p))
        total += rss_mb(p)
    return total


def cpu_seconds(pid):
    """User + system CPU seconds a process has used so far (0 when it is gone)."""
    try:
        fields = open(f'/proc/{pid}/stat').read().rsplit(')', 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')
    except (OSError, IndexError, ValueError):
        return 0.0


def tree_cpu_seconds(pid):
    """CPU seconds of a process and of each of its descendants: {pid: seconds}."""
    found, stack = {}, [pid]
    while stack:
        p = stack.pop()
        stack.extend(children(p))
        found[p] = cpu_seconds(p)
    return found


def stop_group(proc):
    """Stops a Flow started in its own session: Ctrl-C to its group, then SIGKILL if it
    does not stop within 30 s."""
    import signal

    try:
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=30)
    except Exception:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def write_section(marker, body):
    """Replaces (or appends) the section of bench/RESULTS.md that starts with marker."""
    results = os.path.join(ROOT, 'bench/RESULTS.md')
    text = open(results).read() if os.path.exists(results) else '# Benchmark results\n'
    section = f'{marker} {body}'
    if marker in text:
        start = text.index(marker)
        end = text.find('\n## ', start + 1)
        text = text[:start] + section + (text[end:] if end != -1 else '')
    else:
        text = text.rstrip() + '\n\n' + section
    open(results, 'w').write(text)
