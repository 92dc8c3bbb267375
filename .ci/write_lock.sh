#!/usr/bin/env bash
# Records the versions installed in the project's virtualenv as .ci/requirements.lock, the pins .ci/setup.sh installs
# by default. Run it after the suite passed with new versions, e.g. from a fresh clone:
#   LEPTON_DEPS=latest bash .ci/test.sh && bash .ci/write_lock.sh
# The venv should hold only what setup installed (anything installed by hand would be pinned too).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${LEPTON_VENV:-$ROOT/.venv}"
PY="$VENV/bin/python"
LOCK="$ROOT/.ci/requirements.lock"

{ echo "# python $("$PY" -c 'import platform, sys; print("%d.%d" % sys.version_info[:2], platform.system().lower(), platform.machine())')"
  echo "# The versions the test suite last passed with, installed by .ci/setup.sh unless LEPTON_DEPS=latest."
  echo "# Written by .ci/write_lock.sh on $(date +%F); do not edit by hand. torch's pin is LEPTON_TORCH_VERSION's."
  # --exclude-editable drops lepton_graph itself; pip/setuptools are the venv's own
  "$PY" -m pip freeze --exclude-editable --disable-pip-version-check | sed -E 's/^(torch==[^+]*)\+.*/\1/' | LC_ALL=C sort -f
} > "$LOCK.tmp"
mv "$LOCK.tmp" "$LOCK"
echo "wrote $LOCK ($(grep -cv '^#' "$LOCK") pins)" >&2
