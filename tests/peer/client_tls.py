"""The Python `jina.Client` against our gateway over TLS (tls=True), trusting the test's CA
through GRPC_DEFAULT_SSL_ROOTS_FILE_PATH (gRPC) and SSL_CERT_FILE (HTTP).
Usage: client_tls.py PROTOCOL PORT. Prints OK on success; fails with an assertion otherwise."""
import sys

from docarray import DocList
from docarray.documents.legacy import LegacyDocument
from jina import Client

protocol, port = sys.argv[1], int(sys.argv[2])
client = Client(host='localhost', port=port, protocol=protocol, tls=True)
sent = DocList[LegacyDocument](LegacyDocument(id=f'd{i}', text=f'secret {i}') for i in range(5))
got = client.post('/', inputs=sent, return_type=DocList[LegacyDocument])
assert len(got) == 5, f'{protocol}: {len(got)} docs back'
for d in got:
    assert 'stamp' in [m.text for m in d.matches], f'{protocol}: not routed through the Flow: {d}'
print('OK', protocol)
