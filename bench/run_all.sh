#!/usr/bin/env bash
# The main job: sets up .venv (.ci/setup.sh), then prints the benchmark table for the built-in models
# (compile time, latency vs eager, max error) with `lepton-graph bench`. Extra arguments go to it.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${LEPTON_VENV:-$ROOT/.venv}"

bash "$ROOT/.ci/setup.sh"
cd "$ROOT"
exec "$VENV/bin/lepton-graph" bench "$@"
