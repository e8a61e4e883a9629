#!/usr/bin/env python3
"""Runs the benchmark workloads on our Flow and on Python Jina's in one run, with the same Rust
load generator (bench/driver.rs), and prints one table with both and their ratio. Writes it to
bench/RESULTS.md. Called by bench/run, which builds everything first.

B0 floor: a raw tonic unary round trip on loopback (no Flow).
B1 1 no-op executor, 10,000 docs of 100 chars, request_size 100, docs/s (gRPC).
B2 the same through a chain of 4.   B3 the same through a fan-out of 3 and a join.
B4 1,000 sequential 1-doc requests on B1's Flow: p50 and p99 latency.
B5 time to ready and total RSS of the Flow's processes, for 1 and 4 executors.
B6 B1 over REST.
Monitoring and tracing: B1 and B4 on our Flow with monitoring off and on, and with tracing on
   (every span sent to a counting OTLP sink, driver otlp-sink) (issue [K]).
B7 1,000 text documents of 100 KB, request_size 10, through 1 no-op executor and a chain of 3:
   MB/s of payload, and CPU per MB of the Flow's processes (gateway, executors).
B8 the same with 1,000 documents each holding a 224x224x3 float32 tensor (602 KB).
   The floor of B7 and B8: the same requests echoed by a raw tonic server in the driver.
B9 the user's path: `jina client post` reading an NDJSON file of 1,000 100 KB texts, and a
   .npy file of 1,000 224x224x3 float32 rows, into our Flow with one no-op executor, against
   Python Jina's own `Flow.post` of the same documents (built in memory first, bench/flow_post.py),
   request_size 10; and our client's peak RSS at request_size 10 and at the default, 100.
B10 idle executor copies: a Flow of one executor with 16 replicas, idle after a warm-up request:
   each copy's RSS, PSS and private memory (/proc/PID/smaps_rollup).
B11 Python executors (bench/python_executors.py): a no-op and a text-touching executor written
   for Jina, under Python Jina's Flow, our Flow with Python Jina's runtime, and our Flow with our
   host: docs/s at 100 docs per request, p50 of a 1-doc request, time to ready, RSS per copy.
B12 a Flow changed while it serves (bench/flow_reload.py): p50/p99 and docs/s while an executor
   is replaced again and again, next to steady state."""
import datetime
import json
import os
import platform
import subprocess
import sys
import time

import flow_reload
import python_executors
from benchlib import ROOT, children, cpu_seconds, driver, free_port, listener, memory_mb, stop_group, tree_cpu_seconds, tree_rss_mb, write_section

JINA = os.path.join(ROOT, 'target/release/jina')
PEER = os.environ.get('JINA_PEER_VENV', os.path.join(ROOT, 'target/peer-venv'))

FLOWS = {
    'one': ['  - {name: e0, uses: BaseExecutor}'],
    'chain4': [f'  - {{name: e{i}, uses: BaseExecutor}}' for i in range(4)],
    'chain3': [f'  - {{name: e{i}, uses: BaseExecutor}}' for i in range(3)],
    'one_monitored': ['  - {name: e0, uses: BaseExecutor}'],
    'one_traced': ['  - {name: e0, uses: BaseExecutor}'],
    'replicas16': ['  - {name: e0, uses: BaseExecutor, replicas: 16}'],
    'fanout3': [
        '  - {name: p1, uses: BaseExecutor, needs: gateway}',
        '  - {name: p2, uses: BaseExecutor, needs: gateway}',
        '  - {name: p3, uses: BaseExecutor, needs: gateway}',
        '  - {name: r1, uses: BaseExecutor, needs: [p1, p2, p3]}',
    ],
}


class Flow:
    def __init__(self, system, name, workdir, traces_port=None):
        self.grpc, self.http = free_port(), free_port()
        path = os.path.join(workdir, f'{system}-{name}.yml')
        with open(path, 'w') as f:
            extra = '  monitoring: true\n' if name.endswith('_monitored') else ''
            if name.endswith('_traced'):
                extra += f'  tracing: true\n  traces_exporter_port: {traces_port}\n'
            f.write(f'jtype: Flow\nwith:\n  protocol: [grpc, http]\n  port: [{self.grpc}, {self.http}]\n{extra}executors:\n')
            f.write('\n'.join(FLOWS[name]) + '\n')
        cmd = [JINA, 'flow', '--uses', path] if system == 'ours' else [os.path.join(PEER, 'bin/python'), '-m', 'jina', 'flow', '--uses', path]
        self.log = open(os.path.join(workdir, f'{system}-{name}.log'), 'w')
        env = dict(os.environ, JINA_LOG_LEVEL='ERROR')
        start = time.perf_counter()
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        driver('ready', '--port', self.grpc, '--timeout', 180)
        self.ready_s = time.perf_counter() - start
        time.sleep(0.5)
        self.rss_mb = tree_rss_mb(self.proc.pid)

    def stop(self):
        stop_group(self.proc)


def gateway_pid(flow):
    """The gateway's process: the one of the Flow's tree listening on its gRPC port (our
    Flow's own process; a child of Python Jina's)."""
    tree, stack = [], [flow.proc.pid]
    while stack:
        tree.append(stack.pop())
        stack.extend(children(tree[-1]))
    return listener(flow.grpc, tree)


# What the driver sends: B4's latency run (its warm-up included), B1's throughput run (a
# warm-up pass and 5 measured, 10,000 documents at 100 per request).
LATENCY_REQUESTS = 1000 + 50
THROUGHPUT_REQUESTS = 6 * 100


def measure(system, workdir):
    r = {}
    for name in ['one', 'chain4', 'fanout3']:
        print(f'  {system}: {name}', file=sys.stderr, flush=True)
        flow = Flow(system, name, workdir)
        try:
            gateway = gateway_pid(flow)
            used = cpu_seconds(gateway) if gateway else 0.0
            t = driver('throughput', '--port', flow.grpc, '--docs', 10000, '--chars', 100, '--request-size', 100)
            r[f'{name}_docs_per_s'] = t['docs_per_s']
            if gateway:
                r[f'{name}_gateway_us_per_request'] = (cpu_seconds(gateway) - used) / THROUGHPUT_REQUESTS * 1e6
            if name == 'one':
                used = cpu_seconds(gateway) if gateway else 0.0
                lat = driver('latency', '--port', flow.grpc, '--requests', 1000)
                r['p50_ms'], r['p99_ms'] = lat['p50_ms'], lat['p99_ms']
                if gateway:
                    r['latency_gateway_us_per_request'] = (cpu_seconds(gateway) - used) / LATENCY_REQUESTS * 1e6
                rest = driver('throughput', '--port', flow.http, '--protocol', 'http', '--docs', 10000, '--chars', 100, '--request-size', 100)
                r['rest_docs_per_s'] = rest['docs_per_s']
            if name in ('one', 'chain4'):
                r[f'{name}_ready_s'], r[f'{name}_rss_mb'] = flow.ready_s, flow.rss_mb
        finally:
            flow.stop()
    return r


OBSERVABILITY_MODES = ['one', 'one_monitored', 'one_traced']
# B1 with ten times its documents: a run of B1 itself lasts about 20 ms, shorter than the
# machine's hiccups.
OBSERVABILITY_DOCS = 100_000
OBSERVABILITY_ROUNDS = 30


def median(values):
    v = sorted(values)
    return v[len(v) // 2] if len(v) % 2 else (v[len(v) // 2 - 1] + v[len(v) // 2]) / 2


def measure_observability(workdir):
    """B1 and B4 on our Flow with monitoring and tracing off, monitoring on, and tracing on
    (spans to a counting OTLP sink). One B1 run lasts about 20 ms, so a single run says
    little: the three Flows run side by side (idle but for the one measured), warmed up, and
    in each of OBSERVABILITY_ROUNDS rounds each runs B1 (with OBSERVABILITY_DOCS documents)
    and B4 once, in a rotating order. The medians are compared; the spread of the runs with
    everything off is the noise floor."""
    sink_port = free_port()
    sink = subprocess.Popen([sys.argv[1], 'otlp-sink', '--port', str(sink_port)], stdout=subprocess.PIPE, text=True)
    runs, flows = {}, {}
    try:
        for name in OBSERVABILITY_MODES:
            flows[name] = Flow('ours', name, workdir, traces_port=sink_port)
            driver('throughput', '--port', flows[name].grpc, '--docs', OBSERVABILITY_DOCS, '--chars', 100, '--request-size', 100)
            driver('latency', '--port', flows[name].grpc, '--requests', 200)
        for round_ in range(OBSERVABILITY_ROUNDS):
            print(f'  ours: observability, round {round_ + 1}', file=sys.stderr, flush=True)
            k = round_ % len(OBSERVABILITY_MODES)
            for name in OBSERVABILITY_MODES[k:] + OBSERVABILITY_MODES[:k]:
                port = flows[name].grpc
                t = driver('throughput', '--port', port, '--docs', OBSERVABILITY_DOCS, '--chars', 100, '--request-size', 100)
                runs.setdefault(f'{name}_docs_per_s', []).append(t['docs_per_s'])
                lat = driver('latency', '--port', port, '--requests', 1000)
                runs.setdefault(f'{name}_p50_ms', []).append(lat['p50_ms'])
    finally:
        for flow in flows.values():
            flow.stop()
        sink.terminate()
        out = sink.communicate(timeout=30)[0]
    r = {k: median(v) for k, v in runs.items()}
    r['runs'] = runs
    r['spans'] = json.loads(out.strip().splitlines()[-1])['spans']
    return r


def observability_table(m):
    n = OBSERVABILITY_ROUNDS
    rows = [f'| workload (median of {n} runs; off: and their spread) | off | monitoring on | change | tracing on | change |',
            '|---|---|---|---|---|---|']
    for label, key, fmt in [(f'B1 1 no-op executor, {OBSERVABILITY_DOCS:,} docs, docs/s', 'docs_per_s', '{:,.0f}'),
                            ('B4 1-doc request latency p50, ms', 'p50_ms', '{:.3f}')]:
        off, mon, tr = m[f'one_{key}'], m[f'one_monitored_{key}'], m[f'one_traced_{key}']
        spread = m['runs'][f'one_{key}']
        off_text = f'{fmt.format(off)} ({fmt.format(min(spread))}–{fmt.format(max(spread))})'
        rows.append(f'| {label} | {off_text} | {fmt.format(mon)} | {100 * (mon / off - 1):+.1f}% | '
                    f'{fmt.format(tr)} | {100 * (tr / off - 1):+.1f}% |')
    return '\n'.join(rows)


def measure_big(system, workdir):
    """B7 and B8: MB/s through 1 and 3 executors, and the Flow's CPU per MB (its own process,
    where our gateway runs, and the executors below it)."""
    r = {}
    for name in ['one', 'chain3']:
        for kind in ['text', 'tensor']:
            print(f'  {system}: {name} {kind}', file=sys.stderr, flush=True)
            flow = Flow(system, name, workdir)
            try:
                before = tree_cpu_seconds(flow.proc.pid)
                big = driver('big', '--port', flow.grpc, '--kind', kind, '--docs', 1000, '--request-size', 10, '--passes', 3)
                after = tree_cpu_seconds(flow.proc.pid)
            finally:
                flow.stop()
            used = {p: after[p] - before.get(p, 0.0) for p in after}
            mb = big['mb_total']
            r[f'{name}_{kind}_mb_s'] = big['mb_per_s']
            r[f'{name}_{kind}_client_cpu_ms_mb'] = big['client_cpu_s_per_mb'] * 1000
            r[f'{name}_{kind}_flow_cpu_ms_mb'] = sum(used.values()) / mb * 1000
            r[f'{name}_{kind}_root_cpu_ms_mb'] = used.get(flow.proc.pid, 0.0) / mb * 1000
            r[f'{name}_{kind}_rest_cpu_ms_mb'] = (sum(used.values()) - used.get(flow.proc.pid, 0.0)) / mb * 1000
    return r


def big_table(ours, python, echo):
    """B7 and B8 as rows, with the floor beside each."""
    lines = ['| workload | jina-rs MB/s | Python Jina MB/s | jina-rs advantage | floor MB/s (raw tonic echo) | jina-rs / floor | Flow CPU ms per MB, jina-rs (gateway + executors) | Flow CPU ms per MB, Python | client CPU ms per MB |',
             '|---|---|---|---|---|---|---|---|---|']
    for label, kind in [('B7 100 KB texts', 'text'), ('B8 224x224x3 float32 tensors', 'tensor')]:
        for name, desc in [('one', '1 executor'), ('chain3', 'chain of 3')]:
            k = f'{name}_{kind}'
            o, p, f = ours[f'{k}_mb_s'], python[f'{k}_mb_s'], echo[kind]
            lines.append(f'| {label}, {desc} | {o:,.0f} | {p:,.0f} | {o / p:.1f}× | {f:,.0f} | {o / f:.2f} | '
                         f'{ours[k + "_flow_cpu_ms_mb"]:.2f} ({ours[k + "_root_cpu_ms_mb"]:.2f} + {ours[k + "_rest_cpu_ms_mb"]:.2f}) | '
                         f'{python[k + "_flow_cpu_ms_mb"]:.2f} | {ours[k + "_client_cpu_ms_mb"]:.2f} |')
    return '\n'.join(lines)


CLI_PASSES = 3


def cli_inputs(workdir):
    """B9's files, made once: 1,000 NDJSON documents of 100 KB text, a .npy of 1,000
    224x224x3 float32 rows (written by the peer's numpy), and 100,000 small NDJSON documents."""
    ndjson, npy = os.path.join(workdir, 'b9-texts.ndjson'), os.path.join(workdir, 'b9-tensors.npy')
    if not os.path.exists(ndjson):
        with open(ndjson, 'w') as f:
            for i in range(1000):
                f.write(json.dumps({'id': f'd{i}', 'text': (f'{i:08}' + 'abcdefghij' * 10_000)[:100_000]}) + '\n')
    if not os.path.exists(npy):
        subprocess.run([os.path.join(PEER, 'bin/python'), '-c',
                        'import numpy as np, sys; np.save(sys.argv[1], np.random.default_rng(1).random((1000, 224, 224, 3), dtype=np.float32))', npy],
                       check=True)
    small = os.path.join(workdir, 'b9-small.ndjson')
    if not os.path.exists(small):
        with open(small, 'w') as f:
            for i in range(100_000):
                f.write(json.dumps({'id': f'd{i:06d}', 'text': f'document number {i} of the corpus'}) + '\n')
    small_mb = sum(len(json.loads(line)['text']) for line in open(small)) / 1e6
    # (kind, file, MB of payload, request_size; None: each side's default, our CLI without the
    # flag, Python's Flow.post at its 100): small documents at the default size.
    npy_mb = 1000 * 224 * 224 * 3 * 4 / 1e6
    return [('text', ndjson, 100.0, 10), ('tensor', npy, npy_mb, 10),
            ('text_default', ndjson, 100.0, None), ('tensor_default', npy, npy_mb, None), ('small', small, small_mb, 100)]


def run_cli(port, path, request_size):
    """One `jina client post` of the file: (seconds, peak RSS in MB)."""
    start = time.perf_counter()
    size = [] if request_size is None else ['--request-size', str(request_size)]
    proc = subprocess.Popen([JINA, 'client', 'post', '/index', '--port', str(port), '--inputs', path, *size],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    if status != 0:
        raise RuntimeError(f'jina client post {path} failed: {proc.stderr.read().decode()}')
    return seconds, usage.ru_maxrss / 1024


def measure_cli(workdir):
    """B9: MB/s of our CLI into our Flow, and of Python's own Flow.post into Python's."""
    r = {}
    inputs = cli_inputs(workdir)
    print('  ours: cli', file=sys.stderr, flush=True)
    flow = Flow('ours', 'one', workdir)
    try:
        for kind, path, mb, size in inputs:
            run_cli(flow.grpc, path, size)
            runs = [run_cli(flow.grpc, path, size) for _ in range(CLI_PASSES)]
            r[f'ours_{kind}_mb_s'] = median([mb / s for s, _ in runs])
            r[f'ours_{kind}_rss'] = max(rss for _, rss in runs)
    finally:
        flow.stop()
    print('  python: Flow.post', file=sys.stderr, flush=True)
    for kind, path, _, size in inputs:
        out = subprocess.run([os.path.join(PEER, 'bin/python'), os.path.join(ROOT, 'bench/flow_post.py'), path, str(size or 100), str(CLI_PASSES)],
                             check=True, capture_output=True, text=True)
        r[f'python_{kind}_mb_s'] = json.loads(out.stdout.strip().splitlines()[-1])['mb_per_s']
    return r


def cli_table(cli, echo):
    lines = ['| workload | jina-rs: `jina client post` MB/s | Python Jina: `Flow.post` MB/s | jina-rs advantage | floor MB/s (raw tonic echo) | jina-rs client peak RSS |',
             '|---|---|---|---|---|---|']
    for label, kind in [('B9 NDJSON, 1,000 texts of 100 KB (100 MB), request_size 10', 'text'),
                        ('B9 .npy, 1,000 224x224x3 float32 rows (602 MB), request_size 10', 'tensor'),
                        ('B9 NDJSON, the same, default request size', 'text_default'),
                        ('B9 .npy, the same, default request size', 'tensor_default'),
                        ('B9 NDJSON, 100,000 texts of about 30 characters, request_size 100', 'small')]:
        o, p = cli[f'ours_{kind}_mb_s'], cli[f'python_{kind}_mb_s']
        base = kind.removesuffix('_default')
        floor = f'{echo[base]:,.0f}' if base in echo else '–'
        lines.append(f'| {label} | {o:,.1f} | {p:,.1f} | {o / p:.1f}× | {floor} | {cli[f"ours_{kind}_rss"]:.0f} MB |')
    return '\n'.join(lines)


def measure_idle_copies(workdir):
    """B10: each idle copy's memory, in a Flow of 16 replicas after one request."""
    flow = Flow('ours', 'replicas16', workdir)
    try:
        driver('throughput', '--port', flow.grpc, '--docs', 100, '--chars', 100, '--request-size', 1)
        time.sleep(1)
        copies = [memory_mb(pid) for pid in children(flow.proc.pid)]
    finally:
        flow.stop()
    return {k: median([c[k] for c in copies]) for k in ['rss', 'pss', 'private']} | {'copies': len(copies)}


def main():
    workdir = os.path.join(ROOT, 'target/bench')
    os.makedirs(workdir, exist_ok=True)
    floor = driver('floor', '--requests', 10000)
    echo = {kind: driver('echo', '--kind', kind, '--docs', 1000, '--request-size', 10, '--passes', 3)['mb_per_s'] for kind in ['text', 'tensor']}
    ours = measure('ours', workdir)
    ours.update(measure_big('ours', workdir))
    idle = measure_idle_copies(workdir)
    cli = measure_cli(workdir)
    observed = measure_observability(workdir)
    hosted = python_executors.measure(workdir, os.path.join(ROOT, 'target/bench-host-venv/bin/python'))
    reloading = flow_reload.measure(workdir)
    python = measure('python', workdir)
    python.update(measure_big('python', workdir))
    rows = [
        ('B0 raw tonic unary round trip, p50', 'ms', floor['p50_ms'], None, None),
        ('B1 1 no-op executor, gRPC', 'docs/s', ours['one_docs_per_s'], python['one_docs_per_s'], 'up'),
        ('B2 chain of 4', 'docs/s', ours['chain4_docs_per_s'], python['chain4_docs_per_s'], 'up'),
        ('B3 fan-out of 3 + join', 'docs/s', ours['fanout3_docs_per_s'], python['fanout3_docs_per_s'], 'up'),
        ('B4 1-doc request latency, p50', 'ms', ours['p50_ms'], python['p50_ms'], 'down'),
        ('B4 1-doc request latency, p99', 'ms', ours['p99_ms'], python['p99_ms'], 'down'),
        ('B5 time to ready, 1 executor', 's', ours['one_ready_s'], python['one_ready_s'], 'down'),
        ('B5 time to ready, 4 executors', 's', ours['chain4_ready_s'], python['chain4_ready_s'], 'down'),
        ('B5 total RSS, 1 executor', 'MB', ours['one_rss_mb'], python['one_rss_mb'], 'down'),
        ('B5 total RSS, 4 executors', 'MB', ours['chain4_rss_mb'], python['chain4_rss_mb'], 'down'),
        ('B6 B1 over REST', 'docs/s', ours['rest_docs_per_s'], python['rest_docs_per_s'], 'up'),
        ('gateway CPU per 1-doc request (B4)', 'µs', ours['latency_gateway_us_per_request'], python.get('latency_gateway_us_per_request'), 'down'),
        ('gateway CPU per 100-doc request, 1 executor (B1)', 'µs', ours['one_gateway_us_per_request'], python.get('one_gateway_us_per_request'), 'down'),
        ('gateway CPU per 100-doc request, chain of 4 (B2)', 'µs', ours['chain4_gateway_us_per_request'], python.get('chain4_gateway_us_per_request'), 'down'),
    ]

    def fmt(v):
        return '–' if v is None else (f'{v:,.0f}' if v >= 100 else f'{v:.3g}')

    lines = ['| workload | unit | jina-rs | Python Jina 3.34 | jina-rs advantage |', '|---|---|---|---|---|']
    for label, unit, a, b, better in rows:
        ratio = '–' if b is None else f'{(a / b if better == "up" else b / a):.1f}×'
        lines.append(f'| {label} | {unit} | {fmt(a)} | {fmt(b)} | {ratio} |')
    floor_note = (f'B0: the floor is {floor["p50_ms"]:.3f} ms per unary round trip (p99 {floor["p99_ms"]:.3f} ms); '
                  f'our 1-doc request through gateway and one executor (two hops, plus a client stream) takes {ours["p50_ms"]:.3f} ms at p50. '
                  f'B4\'s target of 1/20 of Python\'s p50 would be {python["p50_ms"] / 20:.3f} ms, below the {2 * floor["p50_ms"]:.3f} ms that '
                  f'two loopback round trips (client to gateway, gateway to executor) cost on this machine before any work is done.')
    cpu = next((l.split(':', 1)[1].strip() for l in open('/proc/cpuinfo') if l.startswith('model name')), platform.processor())
    header = f'Run {datetime.date.today()} on {cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}; release build; Python Jina 3.34.0 (docarray 0.40.1) in the same run, driven by the same Rust client.'
    table = '\n'.join(lines)
    big = big_table(ours, python, echo)
    big_note = ('B7/B8: 1,000 documents per pass, request_size 10, 3 measured passes after a warm-up (median MB/s of payload), '
                'sent by the same Rust client to both; the floor is the same requests echoed by a raw tonic server in the client process. '
                'Flow CPU is read from /proc for the Flow\'s process tree: for jina-rs, the Flow\'s own process (the gateway) + its executor children.')
    print(header)
    print(table)
    print(floor_note)
    print(big)
    cli_rows = cli_table(cli, echo)
    cli_note = (f'B9: the file read by our CLI in the time (process start included), into our Flow; Python\'s documents built '
                f'before the time starts; median of {CLI_PASSES} passes after a warm-up. The default request size is Python\'s '
                f'Flow.post\'s 100 documents, and our CLI without --request-size: 100 documents or 1 MiB of them, whichever comes first '
                f'(--request-bytes; 10 of the texts, 2 of the tensors; at request_size 10 the tensors go 2 at a time too). '
                f'The peak RSS is the highest of {CLI_PASSES} runs, each with the default byte budget (16 MiB in flight).')
    idle_note = (f'B10: {idle["copies"]} idle copies of one no-op executor (replicas: 16), after traffic: median per copy '
                 f'RSS {idle["rss"]:.1f} MB, PSS {idle["pss"]:.1f} MB, private {idle["private"]:.1f} MB. RSS counts every '
                 f'page a copy maps, shared ones (the binary\'s code, libc) whole; PSS divides them among the copies; private '
                 f'is what a copy adds by itself.')
    print(cli_rows)
    print(idle_note)
    observability = observability_table(observed)
    observability_note = ('Monitoring and tracing (issue [K]): the same B1 and B4 on our Flow with `monitoring: true` (the gateway and the '
                          'executor record every request into Prometheus histograms and counters), and with `tracing: true` (every '
                          'request a trace: the gateway\'s span, a call span and the executor\'s span, batched and exported over '
                          f'OTLP/gRPC to a counting sink, which received {observed["spans"]:,} spans). The three Flows ran side by side, '
                          f'warmed up; in each of {OBSERVABILITY_ROUNDS} rounds each ran B1 and B4 once, in a rotating order; medians.')
    print(observability)

    b11 = python_executors.table(hosted)
    print(b11)
    b11_note = python_executors.NOTE
    b12 = flow_reload.table(reloading)
    print(b12)

    write_section('## Flow benchmark against Python Jina', f'— `bench/run`\n\n{header}\n\n{table}\n\n{floor_note}\n\n{big}\n\n{big_note}\n\n{cli_rows}\n\n{cli_note}\n\n{idle_note}\n\n{observability}\n\n{observability_note}\n\n{b11}\n\n{b11_note}\n\n{b12}\n\n{flow_reload.NOTE}\n')

if __name__ == '__main__':
    main()
