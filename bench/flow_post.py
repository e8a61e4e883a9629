"""B9's Python side: Python Jina's own `Flow.post`, the path a Python user takes, with the
documents of an NDJSON file (100 KB texts) or of a .npy file (one tensor per row) built in
memory first, so that only the post is timed (Python at its best: no file reading in the time).
Runs in the peer's venv. Usage: flow_post.py FILE REQUEST_SIZE PASSES.
Prints one JSON object: the median MB/s of payload over PASSES timed passes after a warm-up."""
import json
import os
import sys
import time

os.environ.setdefault('JINA_OPTOUT_TELEMETRY', '1')
os.environ.setdefault('JINA_LOG_LEVEL', 'ERROR')

import numpy as np
from docarray import DocList
from docarray.documents.legacy import LegacyDocument
from jina import Flow

path, request_size, passes = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
if path.endswith('.npy'):
    rows = np.load(path)
    docs = DocList[LegacyDocument]([LegacyDocument(tensor=row) for row in rows])
    payload = rows.nbytes
else:
    with open(path) as f:
        lines = [json.loads(line) for line in f]
    docs = DocList[LegacyDocument]([LegacyDocument(id=l['id'], text=l['text']) for l in lines])
    payload = sum(len(l['text']) for l in lines)

rates = []
with Flow().add() as flow:
    for i in range(passes + 1):
        start = time.perf_counter()
        flow.post('/index', inputs=docs, request_size=request_size, return_type=DocList[LegacyDocument])
        if i:
            rates.append(payload / 1e6 / (time.perf_counter() - start))
rates.sort()
print(json.dumps({'mb_per_s': rates[len(rates) // 2], 'mb_per_pass': payload / 1e6}))
