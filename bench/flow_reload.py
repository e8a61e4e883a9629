#!/usr/bin/env python3
"""B12: a Flow changed while it serves (docs/resilience.md, "Changing a running Flow").

A chain of two no-op executors, the second with 2 replicas; its `env` is changed and the Flow told
(SIGHUP) every RELOAD_EVERY seconds, so it is replaced again and again, replica by replica (for
each: start the new copy, switch the router, drain and stop the old one) while the same Rust
client measures. Steady state is the
same Flow with no change. Python Jina has no counterpart (its reload restarts the Flow).

Usage: bench/flow_reload.py DRIVER. Called by bench/run.py; runs alone too.
"""
import os
import re
import signal
import subprocess
import sys
import threading
import time

from benchlib import ROOT, driver, free_port, stop_group

JINA = os.path.join(ROOT, 'target/release/jina')
RELOAD_EVERY = 0.25


def flow_yaml(port, generation):
    return (f'jtype: Flow\nwith:\n  protocol: grpc\n  port: {port}\nexecutors:\n'
            f'  - {{name: e0, uses: BaseExecutor}}\n'
            f'  - {{name: e1, uses: BaseExecutor, replicas: 2, env: {{GENERATION: "{generation}"}}}}\n')


class Reloader(threading.Thread):
    """Changes e1 and sends SIGHUP every RELOAD_EVERY seconds until stopped."""

    def __init__(self, proc, path, port):
        super().__init__(daemon=True)
        self.proc, self.path, self.port = proc, path, port
        self.generation = 0
        self.done = threading.Event()

    def run(self):
        while not self.done.wait(RELOAD_EVERY):
            self.generation += 1
            with open(self.path, 'w') as f:
                f.write(flow_yaml(self.port, self.generation))
            self.proc.send_signal(signal.SIGHUP)


def measure(workdir):
    port = free_port()
    path = os.path.join(workdir, 'b12-reload.yml')
    with open(path, 'w') as f:
        f.write(flow_yaml(port, 0))
    log_path = os.path.join(workdir, 'b12-reload.log')
    log = open(log_path, 'w')
    env = dict(os.environ, JINA_LOG_LEVEL='INFO')
    proc = subprocess.Popen([JINA, 'flow', '--uses', path], stdout=log, stderr=subprocess.STDOUT, env=env,
                            start_new_session=True)
    try:
        driver('ready', '--port', port, '--timeout', 60)
        driver('throughput', '--port', port, '--docs', 1000, '--chars', 100, '--request-size', 100)
        result = {}
        for phase in ['steady', 'reloading']:
            reloader = Reloader(proc, path, port) if phase == 'reloading' else None
            if reloader:
                reloader.start()
            latency = driver('latency', '--port', port, '--requests', 5000)
            rate = driver('throughput', '--port', port, '--docs', 20000, '--chars', 100, '--request-size', 100)
            if reloader:
                reloader.done.set()
                reloader.join()
                time.sleep(1)
            result[phase] = {'p50_ms': latency['p50_ms'], 'p99_ms': latency['p99_ms'], 'docs_per_s': rate['docs_per_s']}
        log.flush()
        text = open(log_path).read()
        result['reloads'] = len(re.findall(r'reloaded .*replaced: e1', text))
        result['rolled'] = len(re.findall(r'e1: replica 1 replaced', text))
        result['failed'] = len(re.findall(r'keeps running as it was', text))
        return result
    finally:
        stop_group(proc)


NOTE = ('B12: a chain of two no-op executors, the second with 2 replicas; while reloading, its `env` is changed and '
        f'the Flow sent SIGHUP every {RELOAD_EVERY} s, so it is replaced again and again, replica by replica (for each: '
        'new copy started and waited for, router swapped between requests, old copy drained and stopped). The same Rust client: 5,000 sequential 1-doc requests '
        '(p50, p99), then 20,000 docs of 100 chars at 100 per request (median docs/s of 5 passes). Steady: the same Flow, '
        'unchanged. No request failed: the driver stops at the first error.')


def table(r):
    lines = ['| B12 | steady | while replacing an executor again and again | change |', '|---|---|---|---|']
    for key, label in [('p50_ms', '1-doc request, p50 ms'), ('p99_ms', '1-doc request, p99 ms'),
                       ('docs_per_s', 'docs/s, 100 docs per request')]:
        a, b = r['steady'][key], r['reloading'][key]
        fmt = (lambda v: f'{v:,.0f}') if key == 'docs_per_s' else (lambda v: f'{v:.3f}')
        lines.append(f'| {label} | {fmt(a)} | {fmt(b)} | {100 * (b - a) / a:+.0f}% |')
    lines.append(f'| rolling replacements of e1 during the run (2 copies each) | – | {r["reloads"]} '
                 f'({r["rolled"]} reached replica 1) | |')
    return '\n'.join(lines)


def main():
    workdir = os.path.join(ROOT, 'target/bench')
    os.makedirs(workdir, exist_ok=True)
    print(table(measure(workdir)))


if __name__ == '__main__':
    main()
