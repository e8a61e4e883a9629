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
    """Tags every document with the number of chunks it has, and says how many it saw and from
    where."""

    @requests
    def count(self, docs: DocList[Doc], docs_matrix=None, docs_map=None, **kwargs) -> DocList[Doc]:
        for d in docs:
            d.tags['chunks_seen'] = len(d.chunks or [])
        # Where its documents came from: each request's last executor (`docs_map`) and how
        # many documents each request held (`docs_matrix`).
        return {
            'docs_seen': len(docs),
            'came_from': {str(k): len(v) for k, v in (docs_map or {}).items()},
            'rows': [len(row) for row in docs_matrix or []],
        }


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


class MatrixReader(Executor):
    """A `uses_after` as Jina's tests write one: says what `docs_matrix` held (one row per
    shard, in shard order) and how many documents `docs` had; leaves `docs` as it came."""

    @requests
    def read(self, docs: DocList[Doc], docs_matrix: Optional[list] = None, **kwargs) -> DocList[Doc]:
        rows = [[sorted(d.tags.keys()) for d in row] for row in (docs_matrix or [])]
        return {'rows': rows, 'docs': len(docs)}


class Who(Executor):
    """Writes the same fields as its siblings, each its own value: which copy's value survives a
    merge is what the case shows. `wait` seconds first, so branches finish in order."""

    def __init__(self, label: str = '', wait: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.label = label
        self.wait = wait

    @requests
    def who(self, docs: DocList[Doc], **kwargs) -> DocList[Doc]:
        import time

        time.sleep(self.wait)
        label = self.label or f'shard{self.runtime_args.shard_id}'
        for d in docs:
            d.tags['who'] = label
            d.tags[f'seen_{label}'] = True
            d.text = f'written by {label}'
        return docs


class Process(Executor):
    """As ConditionDumpExecutor in Jina's own tests: marks the text of what it processed."""

    def __init__(self, label: str = '', **kwargs):
        super().__init__(**kwargs)
        self.label = label

    @requests
    def process(self, docs: DocList[Doc], **kwargs) -> DocList[Doc]:
        for d in docs:
            d.text = f'{d.text} processed by {self.label}'
        return docs


class Bar(Executor):
    """Binds /bar only: a post to any other endpoint finds no executor."""

    @requests(on='/bar')
    def bar(self, docs: DocList[Doc], **kwargs) -> DocList[Doc]:
        for d in docs:
            d.tags['bar'] = True
        return docs


class TextDoc(BaseDoc):
    text: str = ''


class ResultDoc(BaseDoc):
    """A custom output schema with a nested document and a list of them, as in Jina's own
    tests of the HTTP face."""
    text: str = ''
    single_text: Optional[TextDoc] = None
    texts: Optional[DocList[TextDoc]] = None


class Nested(Executor):
    """Answers /nested in ResultDoc."""

    @requests(on='/nested')
    def nested(self, docs: DocList[Doc], **kwargs) -> DocList[ResultDoc]:
        return DocList[ResultDoc](
            ResultDoc(
                id=d.id,
                text=d.text,
                single_text=TextDoc(text=f'one {d.text}'),
                texts=DocList[TextDoc]([TextDoc(text='a'), TextDoc(text='b')]),
            )
            for d in docs
        )


from pydantic import BaseModel


class SearchParams(BaseModel):
    """A parameters model, as Jina 3's executors declare one."""
    text: str
    top_k: int = 3


class Typed(Executor):
    """Reads its parameters through a pydantic model."""

    @requests(on='/typed')
    def typed(self, docs: DocList[Doc], parameters: SearchParams, **kwargs) -> DocList[Doc]:
        for d in docs:
            d.tags['text'] = parameters.text
            d.tags['top_k'] = parameters.top_k
        return docs
