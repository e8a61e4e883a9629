from jina import Executor, requests


class Broken(Executor):
    @requests
    def foo(self, documents):
        pass
