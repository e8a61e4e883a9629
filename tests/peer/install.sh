#!/usr/bin/env bash
# Installs the Python Jina peer (jina 3.34.0 with docarray v2) into a virtual environment, for
# the interop tests and the benchmark. Usage: tests/peer/install.sh [VENV_DIR]
# (default: target/peer-venv). pydantic 1 and fastapi < 0.100: with pydantic 2 the peer's HTTP
# gateway fails to start; the constraints settle jina's OpenTelemetry/grpcio/protobuf pins.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
venv=${1:-$here/../../target/peer-venv}
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
if ! "$venv/bin/python" -c "import jina" 2>/dev/null; then
  "$venv/bin/pip" install --quiet -c "$here/constraints.txt" jina==3.34.0 grpcio-tools==1.62.3 pydantic fastapi
fi
"$venv/bin/python" -c "import jina, docarray; print('jina', jina.__version__, 'docarray', docarray.__version__)"
