"""The names a Jina executor file imports (`from jina import Executor, requests`), as jina-rs's
host serves them: the same behaviour as Jina 3's for what an executor sees (its `with:`
arguments, `metas`, `runtime_args`, `workspace`, `requests`), and nothing of Jina's runtime.
"""
import functools
import inspect
import logging
import os
from types import SimpleNamespace
from typing import Dict, List, Optional, Sequence, Union

DEFAULT_ENDPOINT = '/default'

# What Jina passes every handler, by name.
HANDLER_ARGS = ('docs', 'parameters', 'docs_matrix', 'docs_map', 'tracing_context')


class HandlerSignatureError(TypeError):
    """A handler that cannot take what Jina passes it; the message names its file and line."""


def _def_line(fn) -> str:
    """`FILE:LINE` of a function's `def` (below its decorators)."""
    try:
        lines, start = inspect.getsourcelines(fn)
        for offset, line in enumerate(lines):
            if line.lstrip().startswith(('def ', 'async def ')):
                return f'{inspect.getsourcefile(fn)}:{start + offset}'
    except (OSError, TypeError):
        pass
    return f'{fn.__code__.co_filename}:{fn.__code__.co_firstlineno}'


class _Binding:
    """What `@requests` records on a function."""

    def __init__(self, on, request_schema, response_schema):
        self.on = on
        self.request_schema = request_schema
        self.response_schema = response_schema


def requests(
    func=None,
    *,
    on: Optional[Union[str, Sequence[str]]] = None,
    request_schema=None,
    response_schema=None,
):
    """Binds a method to endpoints (`on=`), or, without `on=`, to every endpoint that no other
    method takes (the default handler), as Jina's `@requests`."""

    def bind(fn):
        spec = inspect.getfullargspec(fn)
        generator = inspect.isgeneratorfunction(fn) or inspect.isasyncgenfunction(fn)
        wanted = {'doc'} if generator else {'docs'}
        if not spec.varkw and not wanted.issubset(spec.args):
            raise HandlerSignatureError(
                f'{_def_line(fn)}: handler `{fn.__qualname__}` takes {spec.args[1:]}: it must take '
                f'`{"doc" if generator else "docs"}` and `**kwargs`'
            )
        endpoints = [on] if isinstance(on, str) else list(on or [DEFAULT_ENDPOINT])
        fn.__jina_rs_binding__ = _Binding(endpoints, request_schema, response_schema)
        return fn

    return bind(func) if func is not None else bind


def dynamic_batching(func=None, *, preferred_batch_size: Optional[int] = None, timeout: float = 10_000, **_ignored):
    """Asks that the requests to this method's endpoints be batched, as Jina's
    `@dynamic_batching` (`preferred_batch_size` documents, or `timeout` ms)."""

    def mark(fn):
        fn.__jina_rs_batching__ = (preferred_batch_size, int(timeout))
        return fn

    return mark(func) if func is not None else mark


def monitor(name=None, documentation=None):
    """Jina's `@monitor`: a no-op here (jina-rs's executors record each handler's time in
    their `/metrics`, docs/observability.md)."""

    def mark(fn):
        return fn

    return mark if not callable(name) else name


class Executor:
    """The base of a Jina executor: Jina 3's constructor contract (`metas`, `requests`,
    `runtime_args`, `workspace`, `dynamic_batching` keywords, and `**kwargs` passed on)."""

    def __init__(
        self,
        metas: Optional[Dict] = None,
        requests: Optional[Dict] = None,
        runtime_args: Optional[Dict] = None,
        workspace: Optional[str] = None,
        dynamic_batching: Optional[Dict] = None,
        **kwargs,
    ):
        defaults = {'name': '', 'description': '', 'workspace': '', 'py_modules': ''}
        defaults.update(metas or {})
        self.metas = SimpleNamespace(**defaults)
        self.runtime_args = SimpleNamespace(**(runtime_args or {}))
        self.requests = dict(requests or {})
        self.dynamic_batching = dict(dynamic_batching or {})
        self._init_workspace = workspace
        self.logger = logging.getLogger(self.metas.name or type(self).__name__)

    @property
    def workspace(self) -> Optional[str]:
        """The folder of this copy: WORKSPACE/NAME[/SHARD_ID], made when first asked for."""
        workspace = (
            getattr(self.runtime_args, 'workspace', None)
            or getattr(self.metas, 'workspace', None)
            or self._init_workspace
            or os.path.expanduser('~/.cache/jina')
        )
        path = os.path.join(workspace, self.metas.name or type(self).__name__)
        shard_id = getattr(self.runtime_args, 'shard_id', None)
        if shard_id is not None and shard_id != -1:
            path = os.path.join(path, str(shard_id))
        os.makedirs(path, exist_ok=True)
        return os.path.abspath(path)

    def close(self) -> None:
        """Called once when the executor stops."""

    def __enter__(self):
        return self

    def __exit__(self, *_):
        self.close()
