import asyncio
import os
from typing import Optional

from docarray import BaseDoc, DocList
from jina import Executor, requests


class MyDoc(BaseDoc):
    text: str = ''
    tags: dict = {}
    length: Optional[int] = None


class Upper(Executor):
    """A sync handler that changes documents in place, with `with:` arguments."""

    def __init__(self, suffix: str = '', **kwargs):
        super().__init__(**kwargs)
        self.suffix = suffix

    @requests(on='/index')
    def upper(self, docs: DocList[MyDoc], **kwargs):
        for d in docs:
            d.text = d.text.upper() + self.suffix


class Measure(Executor):
    """An async default handler that returns new documents and knows which copy it is."""

    @requests
    async def measure(self, docs: DocList[MyDoc], parameters: dict, **kwargs) -> DocList[MyDoc]:
        await asyncio.sleep(0)
        out = DocList[MyDoc]()
        for d in docs:
            d.length = len(d.text)
            d.tags['copy'] = self.runtime_args.name
            d.tags['shard_id'] = self.runtime_args.shard_id
            d.tags['factor'] = parameters.get('factor', 1)
            out.append(d)
        return out

    @requests(on='/stats')
    def stats(self, docs: DocList[MyDoc], **kwargs):
        return {'docs': len(docs), 'workspace': self.workspace}

    @requests(on='/fail')
    def fail(self, docs: DocList[MyDoc], **kwargs):
        raise RuntimeError('failing on purpose')

    @requests(on='/count')
    def count(self, doc: MyDoc, **kwargs):
        for i in range(3):
            yield MyDoc(text=f'{doc.text} {i}')

    def close(self):
        with open(os.path.join(self.workspace, 'closed'), 'w') as f:
            f.write('closed')
