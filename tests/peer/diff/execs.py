"""Python executors for the differential suite (tests/differential.rs): each makes visible what
a topology did to the documents and parameters it saw."""
from typing import Optional

import numpy as np
from docarray import BaseDoc, DocList
from docarray.typing import NdArray
from jina import Executor, requests


class Part(BaseDoc):
    """A chunk or a match."""
    text: str = ''


class Doc(BaseDoc):
    """The documents of the suite. (LegacyDocument's schema cannot be written by the peer's
    pydantic 1, so a Python Flow could not discover its executors' endpoints.)"""
    text: str = ''
    tags: dict = {}
    chunks: Optional[DocList[Part]] = None
    matches: Optional[DocList[Part]] = None
    embedding: Optional[NdArray] = None


def _append(docs, field, part):
    if getattr(docs, field) is None:
        setattr(docs, field, DocList[Part]())
    getattr(docs, field).append(part)


class Stamp(Executor):
    """Adds a chunk named after its label to every document, and tags it."""

    def __init__(self, label: str = 'stamp', **kwargs):
        super().__init__(**kwargs)
        self.label = label

    @requests
    def stamp(self, docs: DocList[Doc], **kwargs) -> DocList[Doc]:
        for d in docs:
            _append(d, 'chunks', Part(id=f'{d.id}-{self.label}', text=self.label))
            d.tags[self.label] = True
        return docs


class Count(Executor):
    """Tags every document with the number of chunks it has, and says how many it saw."""

    @requests
    def count(self, docs: DocList[Doc], **kwargs) -> DocList[Doc]:
        for d in docs:
            d.tags['chunks_seen'] = len(d.chunks or [])
        return {'docs_seen': len(docs)}


class ShardId(Executor):
    """Says which shard and replica it is."""

    @requests
    def which(self, docs: DocList[Doc], **kwargs) -> DocList[Doc]:
        for d in docs:
            d.tags[f'shard{self.runtime_args.shard_id}'] = True
        return {'shard_id': self.runtime_args.shard_id}


class Params(Executor):
    """Says which parameters it was given."""

    @requests
    def params(self, docs: DocList[Doc], parameters, **kwargs) -> DocList[Doc]:
        return {'saw': sorted(parameters.keys())}


class Raise(Executor):
    """Fails on /fail; passes documents on elsewhere."""

    @requests(on='/fail')
    def fail(self, docs: DocList[Doc], **kwargs) -> DocList[Doc]:
        raise ValueError('this executor fails on /fail')

    @requests
    def ok(self, docs: DocList[Doc], **kwargs) -> DocList[Doc]:
        pass


class Embed(Executor):
    """Gives every document an embedding (float32, shape (3,)) and a match with a score."""

    @requests
    def embed(self, docs: DocList[Doc], **kwargs) -> DocList[Doc]:
        for i, d in enumerate(docs):
            d.embedding = np.arange(3, dtype=np.float32) + i
            _append(d, 'matches', Part(id=f'{d.id}-m', text='match'))
        return docs


class Only(Executor):
    """Binds /only; its default handler leaves documents alone."""

    @requests(on='/only')
    def only(self, docs: DocList[Doc], **kwargs) -> DocList[Doc]:
        for d in docs:
            d.tags['only'] = True
        return docs

    @requests
    def other(self, docs: DocList[Doc], **kwargs) -> DocList[Doc]:
        pass
