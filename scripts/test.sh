#!/usr/bin/env bash
# The test command of README.rst: install what the tests need, then run lint and tests.
# Extra arguments go to pytest (e.g. scripts/test.sh -k capabilities -x).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
VENV=${MOTEY_VENV:-$(pwd)/.venv}
echo "==> ruff"
"$VENV/bin/ruff" check .
echo "==> mypy"
"$VENV/bin/mypy" motey
echo "==> docs (sphinx, warnings are errors)"
"$VENV/bin/sphinx-build" -q -W -b html docs "${TMPDIR:-/tmp}/motey-docs-build"
echo "==> pytest"
"$VENV/bin/python" -m pytest -p no:cacheprovider "$@"
