from jina import Executor, requests


class Other(Executor):
    @requests
    def foo(self, docs, **kwargs):
        pass
