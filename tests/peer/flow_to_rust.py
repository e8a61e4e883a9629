"""A Python Jina Flow uses our `jina executor` as an external executor (it lists our services
through gRPC reflection and reads our endpoint schemas), and documents pass through it.
Usage: flow_to_rust.py EXECUTOR_PORT. Prints OK on success."""
import sys

import numpy as np
from docarray import DocList
from docarray.documents.legacy import LegacyDocument
from jina import Flow

port = int(sys.argv[1])
flow = Flow().add(host='127.0.0.1', port=port, external=True, name='rusty')
with flow:
    sent = DocList[LegacyDocument](
        LegacyDocument(id=f'd{i}', text=f'hello {i}', embedding=np.array([1.0, 2.0, float(i)]), tags={'i': i})
        for i in range(10)
    )
    got = flow.post('/index', inputs=sent, return_type=DocList[LegacyDocument])
    assert len(got) == 10, len(got)
    for d in got:
        i = int(d.id[1:])
        assert d.text == f'hello {i}', d
        assert np.allclose(np.asarray(d.embedding), [1.0, 2.0, float(i)]), d.embedding
        assert int(d.tags['i']) == i, d.tags
        assert [m.text for m in d.matches] == ['rusty'], f'our executor did not run: {d.matches}'
print('OK flow')
