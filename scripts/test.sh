#!/usr/bin/env bash
# The test command (README, `make test`, .ci/run): installs what the tests need, checks that
# PostgreSQL and Redis answer, then runs ruff, mypy (strict) and pytest. Extra arguments go to
# pytest. A run that collects no tests fails.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/ensure-services.sh
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".[dev]"

echo "== ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
echo "== mypy"
.venv/bin/mypy
echo "== pytest"
status=0
.venv/bin/pytest "$@" || status=$?
if [ "$status" -eq 5 ]; then
  echo "pytest collected no tests: failing" >&2
fi
exit "$status"
