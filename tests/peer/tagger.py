"""A Python executor for the interop tests: tags every document with who saw it and sets an
embedding, keeping every other field as it came."""
import numpy as np
from docarray import DocList
from docarray.documents.legacy import LegacyDocument
from jina import Executor, requests


class PyTagger(Executor):
    def __init__(self, label: str = 'python', **kwargs):
        super().__init__(**kwargs)
        self.label = label

    @requests
    def tag(self, docs: DocList[LegacyDocument], **kwargs) -> DocList[LegacyDocument]:
        for d in docs:
            d.tags['seen_by'] = self.label
            if d.embedding is None:
                d.embedding = np.array([1.0, 2.0, 3.0], dtype=np.float32)
        return docs
