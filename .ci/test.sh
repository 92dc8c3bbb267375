#!/usr/bin/env bash
# The test command: sets up .venv (.ci/setup.sh), then runs the whole pytest suite with Triton kernels in the
# interpreter (no GPU needed) and the derandomized "ci" hypothesis profile. Extra arguments go to pytest, e.g.
#   bash .ci/test.sh -m "not slow" -x tests/csrc
# Exits non-zero when a test fails and also when pytest collected no test at all.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${LEPTON_VENV:-$ROOT/.venv}"

bash "$ROOT/.ci/setup.sh"
# a headless Chromium for the test that renders inspect --html pages (best effort, cached in the venv;
# LEPTON_BROWSER=0 skips it and the test says so)
if [ "${LEPTON_BROWSER:-1}" != 0 ]; then bash "$ROOT/.ci/chromium.sh"; fi

cd "$ROOT"
# lint first: CI keeps the house as it is left (ruff's rules and line length are in pyproject.toml)
"$VENV/bin/ruff" check --quiet lepton_graph tests bench || { echo "[test] ruff check failed" >&2; exit 1; }
"$VENV/bin/ruff" format --check --quiet lepton_graph tests bench ||
  { echo "[test] ruff format --check failed (run: ruff format lepton_graph tests bench)" >&2; exit 1; }
# types: lepton_graph/ (its [tool.mypy] table in pyproject.toml: ir/ and passes/ fully annotated)
"$VENV/bin/mypy" --no-error-summary || { echo "[test] mypy failed" >&2; exit 1; }
export TRITON_INTERPRET=1
export LEPTON_HYPOTHESIS_PROFILE="${LEPTON_HYPOTHESIS_PROFILE:-ci}"
start=$SECONDS
set +e
# The console script, not `python -m pytest`: that would put the working directory (the root) first on sys.path;
# with --import-mode=importlib (pyproject) pytest adds no test folder either, so tests import what users import.
"$VENV/bin/pytest" --durations=15 "$@"
rc=$?
set -e
echo "[test] pytest exit code $rc after $((SECONDS - start)) s" >&2
if [ "$rc" -eq 5 ]; then
  echo "[test] pytest collected no tests: that is a failure, not a pass" >&2
  exit 1
fi
exit "$rc"
