"""The host of one Python executor in jina-rs's runtime: loads the user's files and class,
builds the executor as Jina does, and calls its handlers for the server in `_native`.

It owns what Jina's worker does around a handler: the schema of `docs` (the handler's
annotation, or `request_schema`), the arguments it is given, what its return means (`None`:
changed in place; documents; a dict: results), coroutines and generators. It does not read
YAML or sockets: `_native` (jina-rs's server) gives it each request's fields and takes back
documents.
"""
import importlib
import importlib.util
import inspect
import os
import sys
import threading
import traceback
import types
from typing import Any, Dict, List, Optional

import numpy as np
from docarray import BaseDoc, DocList
from docarray.array.any_array import AnyDocArray

from jina_rs import _executor

ndarray_type = np.ndarray


def make_ndarray(buffer, dtype, shape):
    """A writable array over a received buffer, as DocArray reads one."""
    array = np.frombuffer(buffer, dtype=dtype)
    return array.reshape(shape) if shape else array


class HostError(Exception):
    """A mistake in the user's files, said in one line that names the file and line."""


def _install_jina_alias():
    """`from jina import Executor, requests` in the user's files gives ours: in this process the
    executor runs on jina-rs, whatever else is installed."""
    alias = types.ModuleType('jina')
    alias.__doc__ = 'jina-rs host: the names an executor imports from jina'
    alias.__version__ = '3.34.0'
    alias.__path__ = []  # a package, so `import jina.x` fails with a clear ModuleNotFoundError
    for name in ('Executor', 'requests', 'dynamic_batching', 'monitor'):
        setattr(alias, name, getattr(_executor, name))
    sys.modules['jina'] = alias


def _where(error: BaseException, files: List[str]) -> str:
    """`FILE:LINE: Kind: message` of an error, at the deepest frame in the user's files."""
    if isinstance(error, SyntaxError) and error.filename:
        return f'{error.filename}:{error.lineno}: SyntaxError: {error.msg}'
    frames = traceback.extract_tb(error.__traceback__)
    mine = [f for f in frames if os.path.abspath(f.filename) in files] or frames[-1:]
    place = f'{mine[-1].filename}:{mine[-1].lineno}: ' if mine else ''
    return f'{place}{type(error).__name__}: {error}'


def _import(py_modules: List[str]) -> List[types.ModuleType]:
    files = [os.path.abspath(m) for m in py_modules if m.endswith('.py')]
    modules = []
    for module in py_modules:
        try:
            if module.endswith('.py'):
                path = os.path.abspath(module)
                if not os.path.isfile(path):
                    raise HostError(f'{path}: no such file (py_modules)')
                folder = os.path.dirname(path)
                if folder not in sys.path:
                    sys.path.insert(0, folder)
                name = os.path.splitext(os.path.basename(path))[0]
                spec = importlib.util.spec_from_file_location(name, path)
                loaded = importlib.util.module_from_spec(spec)
                sys.modules[name] = loaded
                spec.loader.exec_module(loaded)
            else:
                loaded = importlib.import_module(module)
        except (HostError, _executor.HandlerSignatureError) as e:
            raise HostError(str(e)) from None
        except BaseException as e:  # a user's file may raise anything while it loads
            raise HostError(_where(e, files)) from None
        modules.append(loaded)
    return modules


def _docs_schema(fn, binding) -> type:
    """The document type a handler's `docs` (or `doc`) is read as."""
    if binding.request_schema is not None:
        schema = binding.request_schema
    else:
        hints = getattr(fn, '__annotations__', {})
        schema = hints.get('docs', hints.get('doc'))
    # `DocList[MyDoc]` (a class, or a typing alias under newer DocArray) names its documents'.
    doc_type = getattr(schema, 'doc_type', None)
    if isinstance(doc_type, type) and issubclass(doc_type, BaseDoc):
        schema = doc_type
    if not (isinstance(schema, type) and issubclass(schema, BaseDoc)):
        # Imported only when a handler names no schema (about 1 MB a copy need not hold).
        from docarray.documents.legacy import LegacyDocument

        schema = LegacyDocument
    return schema


def _builder(schema):
    """How a document of `schema` is built from its fields: by pydantic 2's validator itself
    when the schema keeps BaseModel's own `__init__` (which does just that, at twice the cost
    per document), else by calling the class."""
    init_owner = next(c for c in schema.__mro__ if '__init__' in vars(c))
    validator = getattr(schema, '__pydantic_validator__', None)
    if init_owner.__module__.startswith('pydantic.') and type(validator).__name__ == 'SchemaValidator':
        return validator.validate_python
    return lambda fields: schema(**fields)


def _parameters_model(fn):
    """A pydantic model that a handler's `parameters` is declared as, if any."""
    hint = getattr(fn, '__annotations__', {}).get('parameters')
    try:
        from pydantic import BaseModel

        if isinstance(hint, type) and issubclass(hint, BaseModel):
            return hint
    except ImportError:
        pass
    return None


def _json_schema(model) -> Optional[dict]:
    """A model's JSON schema as Python Jina's endpoint discovery reports it."""
    legacy = sys.modules.get('docarray.documents.legacy')
    try:
        if (legacy is not None and model is legacy.LegacyDocument) or not issubclass(model, BaseDoc):
            return model.schema()
        try:
            from docarray.utils.create_dynamic_doc_class import create_pure_python_type_model

            model = create_pure_python_type_model(model)
        except ImportError:
            pass
        own = getattr(model, 'model_json_schema', None)
        return own() if own is not None else model.schema()
    except Exception:  # a schema pydantic cannot write: discovery shows our Document's
        return None


def _response_schema(fn, binding, request_schema) -> type:
    """The document type a handler answers with: `response_schema`, its return annotation,
    else what it reads."""
    schema = binding.response_schema or getattr(fn, '__annotations__', {}).get('return')
    doc_type = getattr(schema, 'doc_type', None)
    if isinstance(doc_type, type) and issubclass(doc_type, BaseDoc):
        return doc_type
    if isinstance(schema, type) and issubclass(schema, BaseDoc):
        return schema
    return request_schema


class Handler:
    """One bound method, and how to call it."""

    def __init__(self, name, fn, binding):
        self.name = name
        self.fn = fn
        self.endpoints = binding.on
        self.schema = _docs_schema(fn, binding)
        self.doc_list = DocList[self.schema]
        self.build = _builder(self.schema)
        self.parameters_model = _parameters_model(fn)
        spec = inspect.getfullargspec(fn)
        self.takes = None if spec.varkw else set(spec.args) | set(spec.kwonlyargs)
        self.is_async = inspect.iscoroutinefunction(fn)
        self.is_generator = inspect.isgeneratorfunction(fn) or inspect.isasyncgenfunction(fn)
        self.is_async_generator = inspect.isasyncgenfunction(fn)
        batching = getattr(fn, '__jina_rs_batching__', None)
        self.batching = batching if batching and batching[0] else None
        self.response = _response_schema(fn, binding, self.schema)

    def endpoint_schema(self) -> Optional[dict]:
        """What endpoint discovery reports for each of its endpoints."""
        request, response = _json_schema(self.schema), _json_schema(self.response)
        if request is None or response is None:
            return None
        model = self.parameters_model
        return {
            'input': {'name': self.schema.__name__, 'model': request},
            'output': {'name': self.response.__name__, 'model': response},
            'is_generator': self.is_generator,
            'is_singleton_doc': self.is_generator,
            'parameters': {
                'name': model.__name__ if model is not None else None,
                'model': _json_schema(model) if model is not None else None,
            },
        }

    def arguments(self, given: Dict[str, Any]) -> Dict[str, Any]:
        if self.takes is None:
            return given
        return {k: v for k, v in given.items() if k in self.takes}

    def parameters(self, parameters):
        if self.parameters_model is None:
            return parameters
        own = {k: v for k, v in parameters.items() if not k.startswith('__')}
        return self.parameters_model(**own)


_loops = threading.local()


def _run(coroutine):
    """Runs a handler's coroutine to its end on this thread's own event loop."""
    loop = getattr(_loops, 'loop', None)
    if loop is None:
        # asyncio is imported by the first coroutine (2 MB a copy of sync handlers need not hold).
        import asyncio

        loop = _loops.loop = asyncio.new_event_loop()
    return loop.run_until_complete(coroutine)


class Loaded:
    """The user's executor, built, with its handler table for `_native`."""

    def __init__(self, executor, handlers: List[Handler]):
        self.executor = executor
        self.handlers = handlers
        self.bindings = [(h.name, h.endpoints) for h in handlers]
        self.streams = [h.is_generator for h in handlers]
        self.schemas = [h.endpoint_schema() for h in handlers]
        self.batching = [
            (endpoint, h.batching[0], h.batching[1])
            for h in handlers
            if h.batching
            for endpoint in h.endpoints
        ]

    def call(self, index, fields, matrix, sources, parameters, endpoint):
        """Runs handler `index` on the documents' fields: returns (documents, results), or for an
        `async def` handler a coroutine that does. `sources` names the executor each request
        came from (one per row of `matrix`, else one), the keys of `docs_map`."""
        handler = self.handlers[index]
        build, doc_list = handler.build, handler.doc_list
        # Each document is validated by its schema as it is built; the list holds nothing
        # else, so DocList's own check of each item (as costly again) is skipped.
        docs = doc_list([build(f) for f in fields], False)
        given = {'docs': docs, 'parameters': handler.parameters(parameters), 'docs_matrix': None, 'docs_map': None, 'tracing_context': None}
        # As Python Jina's worker: one row per request that came (a single one is `docs`
        # itself), none when they hold no documents at all.
        if matrix is not None:
            given['docs_matrix'] = [doc_list([build(f) for f in row], False) for row in matrix]
        elif len(docs):
            given['docs_matrix'] = [docs]
        if sources:
            # As Python Jina's worker: each request's documents under the executor it came
            # from, a later one replacing an earlier one of the same name.
            rows = given['docs_matrix'] if matrix is not None else [docs]
            given['docs_map'] = dict(zip(sources, rows))
        if given['docs_matrix'] is not None and not any(len(row) for row in given['docs_matrix']):
            given['docs_matrix'] = None
        answer = handler.fn(self.executor, **handler.arguments(given))
        if handler.is_async:
            return self._awaited(handler, answer, docs)
        return _answered(handler, answer, docs)

    async def _awaited(self, handler, coroutine, docs):
        """An `async def` handler's call: awaited by the host with the others queued with it."""
        return _answered(handler, await coroutine, docs)

    def stream(self, index, fields, parameters, endpoint):
        """Starts generator `index` on one document: an iterator of documents."""
        handler = self.handlers[index]
        doc = handler.build(fields)
        given = {'doc': doc, 'parameters': handler.parameters(parameters), 'tracing_context': None}
        items = handler.fn(self.executor, **handler.arguments(given))
        if handler.is_async_generator:
            return _sync_iter(items)
        return iter(items)

    def close(self):
        close = getattr(self.executor, 'close', None)
        if close is not None:
            answer = close()
            if inspect.iscoroutine(answer):
                _run(answer)


def _answered(handler, answer, docs):
    """What a handler's return means: (documents, results)."""
    if answer is None:
        return docs, None
    if isinstance(answer, dict):
        return docs, answer
    if isinstance(answer, BaseDoc):
        return [answer], None
    if isinstance(answer, (AnyDocArray, list, tuple)):
        return answer, None
    raise TypeError(
        f'{handler.name} returned {type(answer).__name__}: a handler returns None (documents '
        'changed in place), documents (a DocList) or a dict (results)'
    )


def gather(coroutines):
    """Runs coroutines together on this thread's event loop: each one's result or exception."""

    import asyncio

    async def together():
        return await asyncio.gather(*coroutines, return_exceptions=True)

    return _run(together())


def _sync_iter(agen):
    while True:
        try:
            yield _run(agen.__anext__())
        except StopAsyncIteration:
            return


def _handlers(cls) -> List[Handler]:
    found, seen = [], set()
    for klass in cls.__mro__:
        for name, fn in vars(klass).items():
            if name in seen:
                continue
            seen.add(name)
            binding = getattr(fn, '__jina_rs_binding__', None)
            if binding is not None:
                found.append(Handler(name, fn, binding))
    return found


def load(request: Dict[str, Any]) -> Loaded:
    """Imports the executor's files, finds its class and builds it, as Jina does; a mistake is
    one line naming the file and line (HostError)."""
    _install_jina_alias()
    origin = request['origin']
    jtype = request['jtype']
    py_modules = request['py_modules']
    files = [os.path.abspath(m) for m in py_modules if m.endswith('.py')]
    modules = _import(py_modules)
    cls = next((getattr(m, jtype) for m in reversed(modules) if hasattr(m, jtype)), None)
    if cls is None:
        classes = sorted(
            n for m in modules for n, v in vars(m).items()
            if isinstance(v, type) and issubclass(v, _executor.Executor) and v is not _executor.Executor
        )
        raise HostError(
            f'{origin}: jtype {jtype}: no such class in {", ".join(py_modules)} '
            f'(executors there: {", ".join(classes) or "none"})'
        )
    if not (isinstance(cls, type) and issubclass(cls, _executor.Executor)):
        raise HostError(f'{origin}: jtype {jtype} is not an Executor (from jina import Executor)')
    try:
        handlers = _handlers(cls)
    except TypeError as e:
        raise HostError(str(e)) from None
    metas = dict(request['metas'])
    metas.setdefault('name', request['name'])
    runtime_args = {
        'name': request['name'],
        'shard_id': request['shard_id'],
        'shards': request['shards'],
        'replica_id': request['replica_id'],
        'replicas': request['replicas'],
        'workspace': request['workspace'],
    }
    try:
        executor = cls(
            **request['with'],
            metas=metas,
            runtime_args=runtime_args,
            workspace=request['workspace'],
        )
    except BaseException as e:
        raise HostError(_where(e, files)) from None
    return Loaded(executor, handlers)


class _Host:
    """What `_native` calls: `load`, and the types it must recognise."""

    BaseDoc = BaseDoc
    AnyDocArray = AnyDocArray
    ndarray_type = ndarray_type
    make_ndarray = staticmethod(make_ndarray)
    load = staticmethod(load)


def serve(argv: List[str]) -> int:
    from jina_rs import _native

    return _native.serve(argv, _Host())
