#!/usr/bin/env bash
# Tests of the Python verifier kit against a live authd (CI calls this).
# Makes target/kit-venv-python once, installs the kit with its test and FastAPI extras, checks
# the types and runs pytest. The tests start $AUTHD_BIN, else target/release/authd, and fail
# when neither exists: build it first with `cargo build --release`.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
venv="$repo/target/kit-venv-python"
python="${PYTHON:-python3}"

if [ ! -x "$venv/bin/python" ]; then
    "$python" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --upgrade pip
fi
cd "$repo"
"$venv/bin/python" -m pip install --quiet -e 'clients/python[test,fastapi]'

cd "$repo/clients/python"
"$venv/bin/python" -m mypy
exec "$venv/bin/python" -m pytest "$@"
