"""A Python executor with a generator endpoint (Jina 3's streaming): for one document, yields
a document per word of its text, upper-cased, with `delay` seconds before each. With `log`,
each word is appended to that file as it is yielded (how a test sees the handler stop)."""
import asyncio

from docarray import BaseDoc
from jina import Executor, requests


class Token(BaseDoc):
    text: str = ''
    parent_id: str = ''
    tags: dict = {}


class PyStreamer(Executor):
    def __init__(self, delay: float = 0.0, log: str = '', **kwargs):
        super().__init__(**kwargs)
        self.delay = delay
        self.log = log

    @requests(on='/stream')
    async def stream(self, doc: Token, **kwargs) -> Token:
        for position, word in enumerate(doc.text.split()):
            await asyncio.sleep(self.delay)
            if self.log:
                with open(self.log, 'a') as f:
                    f.write(word + '\n')
            yield Token(text=word.upper(), parent_id=doc.id, tags={'position': position})
