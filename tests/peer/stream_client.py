"""The Python `jina.Client`'s `stream_doc` against our gateway (Jina 3's streaming endpoints).
Usage: stream_client.py PROTOCOL PORT ENDPOINT TEXT. Prints one line per document as it
arrives: seconds since the call, the document's text, its tags' position. Fails with an
assertion when a document is not what a stream of the text's words should give."""
import asyncio
import sys
import time

from docarray import BaseDoc
from jina import Client


class Token(BaseDoc):
    text: str = ''
    parent_id: str = ''
    tags: dict = {}


async def main(protocol, port, endpoint, text):
    client = Client(host='127.0.0.1', port=port, protocol=protocol, asyncio=True)
    sent = Token(text=text)
    start = time.monotonic()
    async for doc in client.stream_doc(on=endpoint, inputs=sent, return_type=Token):
        print(f'{time.monotonic() - start:.3f} {doc.text} {doc.tags.get("position")}', flush=True)
        assert doc.parent_id == sent.id, f'{protocol}: parent_id {doc.parent_id}, sent {sent.id}'


protocol, port, endpoint, text = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
asyncio.run(main(protocol, port, endpoint, text))
