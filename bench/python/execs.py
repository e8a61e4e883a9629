"""B11's executors, written as Jina users write them: one that does nothing, and one that
touches each document's text."""
from docarray import BaseDoc, DocList
from jina import Executor, requests


class Doc(BaseDoc):
    text: str = ''


class NoOp(Executor):
    @requests
    def noop(self, docs: DocList[Doc], **kwargs):
        pass


class Touch(Executor):
    @requests
    def touch(self, docs: DocList[Doc], **kwargs):
        for d in docs:
            d.text = d.text.upper()
