#!/usr/bin/env python3
"""The encoders, measured: called by bench/encoders, which builds and installs everything.

For each of flows/hello.yml (NgramEncoder) and flows/hello-transformer.yml (TransformerEncoder,
all-MiniLM-L6-v2), a `jina flow` indexes the whole book as `jina hello` does (paragraphs, 50 per
request, over HTTP), then answers the 30 queries of bench/recall/queries.tsv with top_k 10:
recall@1 and recall@10 (a query scores when a match's text holds its expected piece).
Speed: sentences per second of the transformer Flow's indexing, against the model alone in one
process on the same sentences (driver encode: the floor) and sentence-transformers on PyTorch
(2 threads) on the same sentences, same batch size.
Dynamic batching (issue [N]): 1,000 concurrent 1-sentence /search requests (64 in flight) to a
Flow of one TransformerEncoder, without and with `uses_dynamic_batching`: sentences/s and
latency p50 / p99."""
import datetime
import json
import os
import platform
import signal
import subprocess
import sys
import time
import urllib.request

from benchlib import ROOT, driver, free_port, write_section

JINA = os.path.join(ROOT, 'target/release/jina')
MODEL = os.path.join(ROOT, 'target/models/all-MiniLM-L6-v2')
ST_PYTHON = os.path.join(ROOT, 'target/st-venv/bin/python')
WORK = os.path.join(ROOT, 'target/bench/encoders')
BATCH = 32


def paragraphs():
    """The book's paragraphs, cut as `jina hello` cuts them."""
    book = open(os.path.join(ROOT, 'data/pride-and-prejudice.txt')).read()
    texts = [' '.join(p.split()) for p in book.split('\n\n')]
    return [{'id': f'p{n}', 'text': t} for n, t in enumerate(t for t in texts if len(t) > 1)]


def queries():
    for line in open(os.path.join(ROOT, 'bench/recall/queries.tsv')):
        if line.strip() and not line.startswith('#'):
            query, expected = line.rstrip('\n').split('\t')
            yield query, expected


def post(port, path, body):
    req = urllib.request.Request(f'http://127.0.0.1:{port}{path}', data=json.dumps(body).encode(),
                                 headers={'content-type': 'application/json'})
    with urllib.request.urlopen(req, timeout=600) as r:
        answer = json.load(r)
    status = answer.get('header', {}).get('status', {})
    if status.get('code') == 'ERROR':
        raise RuntimeError(status.get('description'))
    return answer


class Flow:
    """One of the hello Flows (or YAML text), with its own ports and a fresh workspace."""

    def __init__(self, name, yaml_file=None, text=None):
        self.grpc, self.http = free_port(), free_port()
        workspace = os.path.join(WORK, f'{name}-workspace')
        subprocess.run(['rm', '-rf', workspace], check=True)
        text = text or open(os.path.join(ROOT, 'flows', yaml_file)).read()
        text = text.replace('  protocol: [grpc, http]\n', f'  protocol: [grpc, http]\n  port: [{self.grpc}, {self.http}]\n')
        text = '\n'.join(l.split('workspace:')[0] + f'workspace: {workspace}' if 'workspace:' in l else l for l in text.splitlines())
        path = os.path.join(WORK, f'{name}.yml')
        open(path, 'w').write(text + '\n')
        env = dict(os.environ, JINA_LOG_LEVEL='ERROR', JINA_MODEL_DIR=MODEL)
        self.log = open(os.path.join(WORK, f'{name}.log'), 'w')
        self.proc = subprocess.Popen([JINA, 'flow', '--uses', path], stdout=self.log, stderr=subprocess.STDOUT,
                                     env=env, start_new_session=True)
        driver('ready', '--port', self.grpc, '--timeout', 180)

    def stop(self):
        os.killpg(self.proc.pid, signal.SIGINT)
        self.proc.wait(timeout=30)


def measure(name, yaml_file):
    print(f'  {name}: indexing the book', file=sys.stderr, flush=True)
    flow = Flow(name, yaml_file)
    try:
        docs, sentences = paragraphs(), []
        start = time.perf_counter()
        for i in range(0, len(docs), 50):
            answer = post(flow.http, '/index', {'data': docs[i:i + 50]})
            sentences += [c['text'] for d in answer['data'] for c in d.get('chunks', [])]
        seconds = time.perf_counter() - start
        hits1 = hits10 = 0
        for query, expected in queries():
            answer = post(flow.http, '/search', {'data': [{'text': query}], 'parameters': {'top_k': 10}})
            found = [expected in m.get('text', '') for m in answer['data'][0].get('matches', [])]
            hits1 += any(found[:1])
            hits10 += any(found[:10])
        n = len(list(queries()))
        return {'sentences': sentences, 'index_s': seconds, 'sentences_per_s': len(sentences) / seconds,
                'recall1': hits1 / n, 'recall10': hits10 / n, 'queries': n}
    finally:
        flow.stop()


def measure_batching(sentences_file):
    """Concurrent 1-sentence searches to one TransformerEncoder, without and with batching."""
    r = {}
    for name, batching in [('unbatched', ''), ('batched', '    uses_dynamic_batching: {/search: {preferred_batch_size: 32, timeout: 10}}\n')]:
        print(f'  dynamic batching: {name}', file=sys.stderr, flush=True)
        text = ('jtype: Flow\nwith:\n  protocol: [grpc, http]\nexecutors:\n  - name: encoder\n    uses: TransformerEncoder\n'
                f'    uses_with: {{model_dir: {MODEL}}}\n{batching}')
        flow = Flow(name, text=text)
        try:
            r[name] = driver('concurrent', '--port', flow.grpc, '--texts', sentences_file, '--requests', 1000,
                             '--concurrency', 64, '--endpoint', '/search')
        finally:
            flow.stop()
    return r


ST_SCRIPT = '''
import json, sys, time, torch
from sentence_transformers import SentenceTransformer
torch.set_num_threads(2)
model = SentenceTransformer(sys.argv[1], device="cpu")
lines = open(sys.argv[2]).read().splitlines()
model.encode(lines[:64], batch_size=int(sys.argv[3]))
runs = []
for _ in range(3):
    start = time.perf_counter()
    model.encode(lines, batch_size=int(sys.argv[3]))
    runs.append(time.perf_counter() - start)
runs.sort()
print(json.dumps({"sentences_per_s": len(lines) / runs[1], "torch": torch.__version__}))
'''


def sentence_transformers(sentences_file):
    if not os.path.exists(ST_PYTHON):
        return None
    out = subprocess.run([ST_PYTHON, '-c', ST_SCRIPT, MODEL, sentences_file, str(BATCH)], capture_output=True, text=True)
    if out.returncode != 0:
        print(out.stderr, file=sys.stderr)
        return None
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    os.makedirs(WORK, exist_ok=True)
    ngram = measure('ngram', 'hello.yml')
    transformer = measure('transformer', 'hello-transformer.yml')
    sentences_file = os.path.join(WORK, 'sentences.txt')
    open(sentences_file, 'w').write('\n'.join(transformer['sentences']) + '\n')
    print('  the model alone (floor)', file=sys.stderr, flush=True)
    floor = driver('encode', '--model', MODEL, '--texts', sentences_file, '--batch-size', BATCH, '--passes', 3)
    print('  sentence-transformers', file=sys.stderr, flush=True)
    python = sentence_transformers(sentences_file)
    batching = measure_batching(sentences_file)

    cpu = next((l.split(':', 1)[1].strip() for l in open('/proc/cpuinfo') if l.startswith('model name')), platform.processor())
    header = (f'Run {datetime.date.today()} on {cpu}, {os.cpu_count()} cores; release build. The whole book '
              f'({len(transformer["sentences"]):,} sentences) indexed by `jina flow` with flows/hello.yml and '
              f'flows/hello-transformer.yml, then the {ngram["queries"]} queries of bench/recall/queries.tsv (each a '
              f'paraphrase of one sentence of the book) with top_k 10.')
    recall = '\n'.join([
        '| encoder | recall@1 | recall@10 |',
        '|---|---|---|',
        f'| NgramEncoder (hashed words and character n-grams, 256 dims) | {ngram["recall1"]:.0%} | {ngram["recall10"]:.0%} |',
        f'| TransformerEncoder (all-MiniLM-L6-v2, 384 dims) | {transformer["recall1"]:.0%} | {transformer["recall10"]:.0%} |',
    ])
    py = '–' if python is None else f'{python["sentences_per_s"]:,.0f}'
    py_note = ('sentence-transformers did not install here' if python is None
               else f'sentence-transformers on PyTorch {python["torch"]}, 2 threads, batch size {BATCH}, same sentences')
    speed = '\n'.join([
        '| indexing the book with all-MiniLM-L6-v2 | sentences/s | ms per batch of 32 |',
        '|---|---|---|',
        f'| jina-rs Flow (segmenter → TransformerEncoder → VectorIndexer, over HTTP) | {transformer["sentences_per_s"]:,.0f} | – |',
        f'| floor: the model alone in one process (candle, no Flow; `driver encode`) | {floor["sentences_per_s"]:,.0f} | {floor["ms_per_batch"]:.1f} |',
        f'| Python: {py_note} | {py} | – |',
        f'| for scale: jina-rs Flow with NgramEncoder | {ngram["sentences_per_s"]:,.0f} | – |',
    ])
    ratio = transformer['sentences_per_s'] / floor['sentences_per_s']
    note = (f'The Flow reaches {ratio:.0%} of the model-alone floor: the model is the cost, and the Flow around it '
            f'(HTTP, three executors, redb writes) adds little.')
    if python is not None:
        note += f' Against sentence-transformers on the same 2 cores: {transformer["sentences_per_s"] / python["sentences_per_s"]:.2f}× (Flow), {floor["sentences_per_s"] / python["sentences_per_s"]:.2f}× (model alone).'
    batch_rows = ['| 1,000 concurrent 1-sentence /search requests, 64 in flight | sentences/s | p50 ms | p99 ms |', '|---|---|---|---|']
    for name, label in [('unbatched', 'TransformerEncoder, no batching'),
                        ('batched', 'TransformerEncoder, `uses_dynamic_batching: {/search: {preferred_batch_size: 32, timeout: 10}}`')]:
        b = batching[name]
        batch_rows.append(f'| {label} | {b["docs_per_s"]:,.0f} | {b["p50_ms"]:.1f} | {b["p99_ms"]:.1f} |')
    batch_table = '\n'.join(batch_rows)
    batch_note = (f'Dynamic batching (issue [N]): {batching["batched"]["docs_per_s"] / batching["unbatched"]["docs_per_s"]:.2f}× the '
                  'sentences per second of one call per request. The encoder runs a batch\'s sentences in groups of similar token '
                  'length, so that short ones are not padded to the longest.')
    print(header, recall, speed, note, batch_table, batch_note, sep='\n\n')
    write_section('## Encoders: recall and speed', f'— `bench/encoders` (issues [L], [N])\n\n{header}\n\n{recall}\n\n{speed}\n\n{note}\n\n{batch_table}\n\n{batch_note}\n')


if __name__ == '__main__':
    main()
