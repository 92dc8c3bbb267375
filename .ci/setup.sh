#!/usr/bin/env bash
# Sets up the project's virtualenv (.venv in the repo, or $LEPTON_VENV) and installs lepton_graph into it in
# editable mode, building the C++ extension. Used by .ci/test.sh and bench/run_all.sh; safe to run again:
#   - nothing changed since the last run          -> does nothing (a second or so);
#   - csrc/, CMakeLists.txt or the module list changed -> rebuilds and re-registers the package only;
#   - pyproject.toml, the lock, this script, LEPTON_DEPS or the Python changed -> reinstalls the dependencies too.
# torch (CPU build) is installed first and pinned, so no later step can pull a CUDA build of it.
#
# Versions: by default (LEPTON_DEPS=pinned) every dependency is installed at the version in .ci/requirements.lock,
# the versions the suite last passed with, so a fresh clone gets what was tested. LEPTON_DEPS=latest installs the
# newest versions pyproject's ranges allow instead (upgrading what is there), to find the next drift early; after
# a green run with them, `bash .ci/write_lock.sh` records them as the new lock. pyproject keeps ranges: they are
# what users of the package get.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${LEPTON_VENV:-$ROOT/.venv}"
PYTHON="${PYTHON:-python3}"
TORCH_VERSION="${LEPTON_TORCH_VERSION:-2.13.0}"
EXTRAS="${LEPTON_EXTRAS:-test,bench}"
DEPS="${LEPTON_DEPS:-pinned}"
LOCK="$ROOT/.ci/requirements.lock"
BUILD_DEPS=("scikit-build-core>=1.1" "pybind11>=2.12" "cmake>=3.18" "ninja")

log() { echo "[setup $(date +%H:%M:%S)] $*" >&2; }
start=$SECONDS

if [ ! -x "$VENV/bin/python" ]; then
  log "creating virtualenv $VENV with $("$PYTHON" --version 2>&1)"
  "$PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"
constraints="$VENV/.lepton-constraints.txt"
upgrade=()
case "$DEPS" in
  pinned)
    lock_python="$(sed -n 's/^# python \([0-9.]*\).*/\1/p' "$LOCK" | head -n 1)"
    venv_python="$("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
    if [ "$lock_python" != "$venv_python" ]; then
      log "WARNING: .ci/requirements.lock was made with Python $lock_python, this venv has $venv_python:" \
          "its pins may not install here, so the newest allowed versions are used (as LEPTON_DEPS=latest)"
      DEPS=latest
    fi ;;
  latest) ;;
  *) log "LEPTON_DEPS must be 'pinned' (the versions in .ci/requirements.lock) or 'latest', not '$DEPS'"; exit 2 ;;
esac
# torch's pin comes from TORCH_VERSION alone (the lock's torch line is the version it was made with)
{ echo "torch==$TORCH_VERSION"
  if [ "$DEPS" = pinned ]; then grep -v -E '^(#|torch==|$)' "$LOCK"; fi; } > "$constraints"
if [ "$DEPS" = latest ]; then upgrade=(--upgrade --upgrade-strategy eager); fi
# pip's output goes to a log in the venv (shown in full when a step fails), so CI logs stay readable.
pip_log="$VENV/.lepton-setup.log"
pip_log_fresh=1
pip_install() {
  if [ "$pip_log_fresh" = 1 ]; then : > "$pip_log"; pip_log_fresh=0; fi
  echo "+ pip install $*" >> "$pip_log"
  "$PY" -m pip install --disable-pip-version-check --progress-bar off "$@" >> "$pip_log" 2>&1 || {
    log "pip install $* failed; its output ($pip_log):"; tail -n 60 "$pip_log" >&2; exit 1; }
}

digest() { "$PY" -c 'import hashlib, sys; print(hashlib.sha256(sys.stdin.buffer.read()).hexdigest())'; }
deps_key() {
  { "$PY" -c 'import sys; print(sys.version)'; echo "$TORCH_VERSION $EXTRAS $DEPS"
    if [ "$DEPS" = latest ]; then date +%F; fi  # "latest" is re-resolved once a day
    cat "$ROOT/pyproject.toml" "${BASH_SOURCE[0]}" "$constraints"; } | digest
}
# Editable installs map module files at install time: a new .py file or any C++ change needs a re-install.
src_key() {
  (cd "$ROOT" && { find lepton_graph kernels -name '*.py' -o -name '*.pyi' | LC_ALL=C sort
                   find CMakeLists.txt csrc -type f | LC_ALL=C sort | xargs cat; }) | digest
}
stamp_deps="$VENV/.lepton-deps"
stamp_src="$VENV/.lepton-src"

install_package() {
  log "rebuilding the extension and re-registering the package"
  pip_install -c "$constraints" --no-build-isolation --no-deps -e "$ROOT"
  src_key > "$stamp_src"
}
check_import() {
  "$PY" -c 'import torch, lepton_graph, lepton_graph._C; print("torch", torch.__version__, "| lepton_graph", lepton_graph.__version__)'
}
show_versions() {
  "$PY" - <<'PYEOF'
from importlib import metadata

def version(name):
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"

names = ["torch", "transformers", "onnxruntime", "openvino", "triton", "numpy", "kernels", "scikit-build-core"]
print(" ".join(f"{n}={version(n)}" for n in names))
PYEOF
}

if [ "$(cat "$stamp_deps" 2>/dev/null)" != "$(deps_key)" ]; then
  installed_torch="$("$PY" -c 'import importlib.metadata as m; print(m.version("torch").split("+")[0])' 2>/dev/null || true)"
  if [ "$installed_torch" != "$TORCH_VERSION" ]; then
    log "installing torch==$TORCH_VERSION (first, so nothing else pulls another build)"
    pip_install ${LEPTON_TORCH_INDEX_URL:+--index-url "$LEPTON_TORCH_INDEX_URL"} "torch==$TORCH_VERSION"
  fi
  log "installing build dependencies ($DEPS versions): ${BUILD_DEPS[*]}"
  pip_install -c "$constraints" ${upgrade[@]+"${upgrade[@]}"} "${BUILD_DEPS[@]}"
  log "installing lepton_graph[$EXTRAS] ($DEPS versions; editable; builds the C++ extension)"
  pip_install -c "$constraints" ${upgrade[@]+"${upgrade[@]}"} --no-build-isolation -e "$ROOT[$EXTRAS]"
  deps_key > "$stamp_deps"
  src_key > "$stamp_src"
  versions="$(check_import)"
elif [ "$(cat "$stamp_src" 2>/dev/null)" != "$(src_key)" ]; then
  log "csrc/, CMakeLists.txt or the module list changed"
  install_package
  versions="$(check_import)"
elif ! versions="$(check_import 2>/dev/null)"; then
  log "lepton_graph does not import from $VENV"
  install_package
  versions="$(check_import)"
else
  log "$VENV is up to date"
fi
log "ready in $((SECONDS - start)) s: $versions"
log "versions ($DEPS): $(show_versions)"
