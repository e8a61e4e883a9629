"""A Python Jina Flow streams through our `jina executor` (a streaming built-in): its gateway
reads from our endpoint discovery that the endpoint is a generator (and makes it a GET route
with Server-Sent Events), and the Python Client's `stream_doc` gets each document over gRPC
and HTTP.
Usage: stream_flow_to_rust.py EXECUTOR_PORT. Prints OK on success."""
import asyncio
import sys

from docarray import BaseDoc
from jina import Client, Flow


class Token(BaseDoc):
    text: str = ''
    parent_id: str = ''
    tags: dict = {}


async def stream(protocol, port, endpoint):
    client = Client(host='127.0.0.1', port=port, protocol=protocol, asyncio=True)
    sent = Token(text='streams arrive one word at a time')
    got = [d async for d in client.stream_doc(on=endpoint, inputs=sent, return_type=Token)]
    words = [d.text for d in got]
    assert words == sent.text.split(), f'{protocol}: {words}'
    assert all(d.parent_id == sent.id for d in got), f'{protocol}: {got}'


port = int(sys.argv[1])
flow = Flow(protocol=['grpc', 'http']).add(host='127.0.0.1', port=port, external=True, name='rusty')
with flow:
    grpc_port, http_port = flow.port
    # Python's HTTP gateway serves GET only for the endpoints discovery lists: our Tokenizer's
    # handler is the default one, so /default; over gRPC any endpoint reaches it.
    asyncio.run(stream('grpc', grpc_port, '/tokenize'))
    asyncio.run(stream('http', http_port, '/default'))
print('OK stream')
