"""`python -m jina_rs.executor FLAGS`: serve one Python executor with jina-rs's runtime.

It takes `jina executor`'s flags (`--uses exec.yml`, or `--uses MyExec --py-modules exec.py`,
`--port`, ...); a Flow of jina-rs starts it this way for each copy of a Python executor.
"""
import sys


def main() -> int:
    import signal

    from jina_rs import _host

    # Ctrl-C and SIGTERM are the server's to handle (it stops cleanly, then calls `close()`);
    # Python's own handler would raise KeyboardInterrupt once it returns.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    return _host.serve(sys.argv[1:])


if __name__ == '__main__':
    sys.exit(main())
