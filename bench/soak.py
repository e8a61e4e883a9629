#!/usr/bin/env python3
"""Soak and chaos, called by bench/soak after it builds everything.

Starts a Flow whose one executor (Sleep with ms: 0, which decodes and stamps every document)
runs as three replicas marked idempotent, measures its maximum rate of 1-doc requests, then
drives it at 80% of that for MINUTES with the driver's `soak` mode while a kill -9 hits a
random replica every 2 to 6 seconds. It prints requests sent, failed and lost, latency p50 / p99
/ max, the kills, and the resident memory of the gateway (the Flow's own process) and of the
whole tree at the start and the end; and writes the same to bench/RESULTS.md.

Only loopback is used, the loop is bounded in time, and the Flow is stopped at the end."""
import datetime
import os
import random
import signal
import subprocess
import sys
import threading
import time

from benchlib import ROOT, children, driver, free_port, rss_mb, stop_group, tree_rss_mb, write_section

JINA = os.path.join(ROOT, 'target/release/jina')
MINUTES = float(sys.argv[2]) if len(sys.argv) > 2 else 10.0


def main():
    workdir = os.path.join(ROOT, 'target/bench')
    os.makedirs(workdir, exist_ok=True)
    port = free_port()
    path = os.path.join(workdir, 'soak.yml')
    with open(path, 'w') as f:
        f.write(f'jtype: Flow\nwith:\n  protocol: [grpc]\n  port: [{port}]\nexecutors:\n'
                '  - {name: worker, uses: {jtype: Sleep, with: {ms: 0}}, replicas: 3, idempotent: true}\n')
    log = open(os.path.join(workdir, 'soak.log'), 'w')
    flow = subprocess.Popen([JINA, 'flow', '--uses', path], stdout=log, stderr=subprocess.STDOUT,
                            env=dict(os.environ, JINA_LOG_LEVEL='INFO'), start_new_session=True)
    kills = []
    try:
        driver('ready', '--port', port, '--timeout', 60)
        print('measuring the maximum rate of 1-doc requests ...', file=sys.stderr, flush=True)
        peak = driver('throughput', '--port', port, '--docs', 20000, '--chars', 20, '--request-size', 1)
        rate = 0.8 * peak['docs_per_s']
        seconds = MINUTES * 60
        gateway_start, tree_start = rss_mb(flow.pid), tree_rss_mb(flow.pid)
        print(f'maximum {peak["docs_per_s"]:,.0f} requests/s; soaking at {rate:,.0f}/s for {MINUTES:g} min '
              f'with a kill -9 every 2-6 s', file=sys.stderr, flush=True)
        stop = threading.Event()

        def chaos():
            rng = random.Random(7)
            while not stop.wait(rng.uniform(2, 6)):
                replicas = children(flow.pid)
                if replicas:
                    victim = rng.choice(replicas)
                    try:
                        os.kill(victim, signal.SIGKILL)
                        kills.append(time.time())
                    except ProcessLookupError:
                        pass

        killer = threading.Thread(target=chaos, daemon=True)
        killer.start()
        started = time.time()
        soak = driver('soak', '--port', port, '--rate', rate, '--seconds', seconds)
        stop.set()
        killer.join()
        took = time.time() - started
        time.sleep(2)
        gateway_end, tree_end = rss_mb(flow.pid), tree_rss_mb(flow.pid)
    finally:
        stop_group(flow)
    restarts = open(os.path.join(workdir, 'soak.log')).read().count('restarted and ready')
    lines = [
        f'| requests sent | {soak["sent"]:,} ({soak["sent"] / took:,.0f}/s, 80% of the measured maximum {peak["docs_per_s"]:,.0f}/s) |',
        f'| failed (answered with an error) | {soak["failed"]:,} |',
        f'| lost (never answered) | {soak["lost"]:,} |',
        f'| latency p50 / p99 / max | {soak["p50_ms"]:.2f} / {soak["p99_ms"]:.2f} / {soak["max_ms"]:.0f} ms |',
        f'| replicas killed (kill -9) / restarted | {len(kills)} / {restarts} |',
        f'| gateway RSS start → end | {gateway_start:.1f} → {gateway_end:.1f} MB ({gateway_end - gateway_start:+.1f}) |',
        f'| whole Flow RSS start → end | {tree_start:.1f} → {tree_end:.1f} MB ({tree_end - tree_start:+.1f}) |',
    ]
    if soak['first_errors'] or soak['stream_error']:
        lines.append(f'| first errors | {"; ".join(soak["first_errors"]) or soak["stream_error"]} |')
    header = (f'Run {datetime.date.today()}, {MINUTES:g} minutes, release build, {os.cpu_count()} cores: one executor '
              f'(Sleep, ms: 0) as 3 replicas marked `idempotent`, 1-doc requests on one gRPC Call stream.')
    table = '| measure | value |\n|---|---|\n' + '\n'.join(lines)
    print(header)
    print(table)
    write_section('## Soak and chaos', f'— `bench/soak`\n\n{header}\n\n{table}\n')
    if soak['lost'] or soak['stream_error']:
        sys.exit(1)


if __name__ == '__main__':
    main()
