"""jina-rs for Python: executors written as for Jina, served by jina-rs's runtime.

`pip install jina-rs` gives the `jina` command (jina-rs's binary) and this package. A Flow of
jina-rs serves a Python executor with the host in this package (`python -m jina_rs.executor`),
in which `from jina import Executor, requests` gives the names below. Outside a host, `jina` is
whatever is installed (Python Jina, or nothing): this package installs no `jina` module.
"""
from jina_rs._executor import Executor, dynamic_batching, monitor, requests

__all__ = ['Executor', 'requests', 'dynamic_batching', 'monitor']
