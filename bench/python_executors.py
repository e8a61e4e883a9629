#!/usr/bin/env python3
"""B11: the same Python executor under three runtimes, driven by the same Rust client:
Python Jina's own Flow; our Flow with Python Jina's executor runtime (`python_runtime: jina`);
our Flow with our host (`pip install jina-rs`, `python_runtime: jina-rs`). For a no-op executor
and one that touches each document's text: docs/s at 100 docs per request, p50 of a 1-document
request, time to ready and the executor copy's RSS.

Usage: bench/python_executors.py DRIVER [HOST_PYTHON]: HOST_PYTHON is a venv's python with
jina-rs's wheel (bench/run makes one, release build). Called by bench/run.py; runs alone too.
"""
import os
import shutil
import subprocess
import sys
import time

from benchlib import ROOT, children, cmdline, driver, free_port, stop_group, tree_rss_mb

JINA = os.path.join(ROOT, 'target/release/jina')
PEER = os.environ.get('JINA_PEER_VENV', os.path.join(ROOT, 'target/peer-venv'))
PEER_PYTHON = os.path.join(PEER, 'bin/python')
EXECUTORS = ['NoOp', 'Touch']
RUNTIMES = ['python', 'ours_jina', 'ours_host']
# Each figure is the median of this many passes (this machine's neighbours come and go).
PASSES = 3


def copy_rss_mb(runtime, flow_pid):
    """The executor copy's resident memory: for our Flow, its child's process tree (for Python
    Jina's runtime, our guard, `jina executor` and its forked worker); for Python Jina's Flow,
    the tree of its child process that is not the gateway."""
    kids = children(flow_pid)
    if runtime == 'python':
        kids = [p for p in kids if 'gateway' not in cmdline(p).lower()]
        trees = sorted(tree_rss_mb(p) for p in kids)
        return trees[0] if trees else 0.0
    return sum(tree_rss_mb(p) for p in kids)


def start(runtime, executor, workdir, host_python):
    grpc, http = free_port(), free_port()
    which = {'python': '', 'ours_jina': ', python_runtime: jina', 'ours_host': ', python_runtime: jina-rs'}[runtime]
    path = os.path.join(workdir, f'b11-{runtime}-{executor}.yml')
    with open(path, 'w') as f:
        f.write(f'jtype: Flow\nwith:\n  protocol: [grpc, http]\n  port: [{grpc}, {http}]\nexecutors:\n'
                f'  - {{name: e0, host: 127.0.0.1, uses: {executor}, py_modules: execs.py{which}}}\n')
    python = host_python if runtime == 'ours_host' else PEER_PYTHON
    cmd = [PEER_PYTHON, '-m', 'jina', 'flow', '--uses', path] if runtime == 'python' else [JINA, 'flow', '--uses', path]
    env = dict(os.environ, JINA_LOG_LEVEL='ERROR', JINA_OPTOUT_TELEMETRY='1', JINA_PYTHON=python)
    log = open(os.path.join(workdir, f'b11-{runtime}-{executor}.log'), 'w')
    began = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=workdir, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    driver('ready', '--port', grpc, '--timeout', 180)
    return proc, grpc, time.perf_counter() - began


def measure(workdir, host_python):
    shutil.copy(os.path.join(ROOT, 'bench/python/execs.py'), workdir)
    results = {}
    for executor in EXECUTORS:
        for runtime in RUNTIMES:
            print(f'  B11: {executor} on {runtime}', file=sys.stderr, flush=True)
            proc, port, ready_s = start(runtime, executor, workdir, host_python)
            try:
                driver('throughput', '--port', port, '--docs', 1000, '--chars', 100, '--request-size', 100)
                rates = sorted(
                    driver('throughput', '--port', port, '--docs', 10000, '--chars', 100, '--request-size', 100)['docs_per_s']
                    for _ in range(PASSES)
                )
                p50s = sorted(driver('latency', '--port', port, '--requests', 1000)['p50_ms'] for _ in range(PASSES))
                time.sleep(0.5)
                results[(executor, runtime)] = {
                    'docs_per_s': rates[PASSES // 2], 'p50_ms': p50s[PASSES // 2], 'ready_s': ready_s,
                    'rss_mb': copy_rss_mb(runtime, proc.pid),
                }
            finally:
                stop_group(proc)
    return results


NOTE = ('B11: the executors of bench/python/execs.py, unchanged, one copy each; 10,000 documents of 100 characters '
        'at 100 per request after a warm-up, then 1,000 sequential 1-document requests, by the same Rust client, each the '
        'median of 3 passes; the RSS after them. Python Jina '
        'runs with its pin of pydantic 1; our host\'s venv has only `pip install jina-rs` (pydantic 2). RSS of the copy: for '
        'our Flow its child\'s process tree (with Python Jina\'s runtime: our guard, `jina executor` and its forked worker); '
        'for Python Jina\'s Flow its executor process.')


def table(results):
    def fmt(v):
        return f'{v:,.0f}' if v >= 100 else f'{v:.3g}'

    lines = ['| B11 executor | measure | Python Jina\'s Flow | our Flow, Python Jina\'s runtime | our Flow, our host | host vs Python Jina\'s Flow |',
             '|---|---|---|---|---|---|']
    for executor in EXECUTORS:
        for key, label, better in [('docs_per_s', 'docs/s, 100 docs per request', 'up'), ('p50_ms', 'p50 of a 1-doc request, ms', 'down'),
                                   ('ready_s', 'time to ready, s', 'down'), ('rss_mb', 'RSS of the executor copy, MB', 'down')]:
            a, b, c = (results[(executor, r)][key] for r in RUNTIMES)
            ratio = (c / a) if better == 'up' else (a / c)
            lines.append(f'| {executor} | {label} | {fmt(a)} | {fmt(b)} | {fmt(c)} | {ratio:.1f}× |')
    return '\n'.join(lines)


def main():
    workdir = os.path.join(ROOT, 'target/bench')
    os.makedirs(workdir, exist_ok=True)
    host_python = sys.argv[2] if len(sys.argv) > 2 else os.path.join(ROOT, 'target/bench-host-venv/bin/python')
    print(table(measure(workdir, host_python)))


if __name__ == '__main__':
    main()
