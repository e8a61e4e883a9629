"""The Python `jina.Client` against our gateway: every field of every document comes back,
is_flow_ready works, and endpoint discovery lists the executors' endpoints.
Usage: client_to_rust.py PROTOCOL PORT. Prints OK on success; fails with an assertion otherwise."""
import sys

import numpy as np
from docarray import DocList
from docarray.documents.legacy import LegacyDocument
from jina import Client


class MyDoc(LegacyDocument):
    custom_field: str = ''


protocol, port = sys.argv[1], int(sys.argv[2])
client = Client(host='127.0.0.1', port=port, protocol=protocol)
assert client.is_flow_ready(), f'{protocol}: is_flow_ready is False'

sent = DocList[MyDoc](
    MyDoc(
        id=f'd{i}',
        text=f'hello {i}',
        embedding=np.array([0.5 * i, 0.25, 0.125]),
        tags={'k': 'v', 'n': i, 'nested': {'deep': [1, 2]}},
        custom_field=f'custom {i}',
        matches=DocList[LegacyDocument]([LegacyDocument(id=f'm{i}', text='a match', tags={'rank': 1})]),
    )
    for i in range(20)
)
got = client.post('/index', inputs=sent, return_type=DocList[MyDoc], request_size=5)
assert len(got) == 20, f'{protocol}: {len(got)} docs back'
by_id = {d.id: d for d in got}
for i in range(20):
    d = by_id[f'd{i}']
    assert d.text == f'hello {i}', d.text
    assert np.allclose(np.asarray(d.embedding), [0.5 * i, 0.25, 0.125]), d.embedding
    assert d.tags['k'] == 'v' and int(d.tags['n']) == i, d.tags
    assert d.tags['nested']['deep'] == [1, 2], d.tags
    assert d.custom_field == f'custom {i}', f'{protocol}: custom field lost: {d}'
    texts = [m.text for m in d.matches]
    assert texts[0] == 'a match' and d.matches[0].id == f'm{i}', texts
    assert 'stamp' in texts, f'{protocol}: the Rust executor did not see it: {texts}'

if protocol == 'grpc':
    import grpc
    from google.protobuf import empty_pb2
    from jina.proto import jina_pb2_grpc

    channel = grpc.insecure_channel(f'127.0.0.1:{port}')
    endpoints = jina_pb2_grpc.JinaDiscoverEndpointsRPCStub(channel).endpoint_discovery(empty_pb2.Empty())
    assert '/default' in endpoints.endpoints and '/index' in endpoints.endpoints, endpoints.endpoints
    status = jina_pb2_grpc.JinaGatewayDryRunRPCStub(channel).dry_run(empty_pb2.Empty())
    assert status.code == 0, status
print('OK', protocol)
