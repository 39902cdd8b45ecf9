#!/usr/bin/env bash
# Prepares the inventory process (Python, standard library only) in a virtual environment
# at .tools/examples/inventory-venv, so it runs on a known interpreter whatever else the
# machine has installed. It needs no package from PyPI: requirements.txt pins none, and
# would pin any it gained (pip install --require-hashes). Idempotent: the stamp is a hash
# of the sources and the interpreter's version.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
venv="$root/.tools/examples/inventory-venv"
python="${PYTHON:-python3}"
if ! "$python" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)'; then
  echo "the inventory example needs Python 3.11 or later ($python is $("$python" --version 2>&1))" >&2
  exit 1
fi
stamp="$("$python" --version 2>&1) $(cat "$here"/requirements.txt "$here"/*.py | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$venv/stamp" 2>/dev/null)" != "$stamp" ] || [ ! -x "$venv/bin/python" ]; then
  echo "preparing the inventory example (Python)" >&2
  rm -rf "$venv"
  "$python" -m venv "$venv"
  if grep -qv '^\s*\(#\|$\)' "$here/requirements.txt"; then
    "$venv/bin/python" -m pip install --quiet --require-hashes -r "$here/requirements.txt"
  fi
  PYTHONPYCACHEPREFIX="$venv/pycache" "$venv/bin/python" -m py_compile "$here"/*.py
  echo "$stamp" >"$venv/stamp"
fi
