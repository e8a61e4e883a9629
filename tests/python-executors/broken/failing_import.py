from jina import Executor, requests
import a_module_that_is_not_installed


class Broken(Executor):
    pass
