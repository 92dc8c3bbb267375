#!/usr/bin/env bash
# Fetches a headless Chromium into $VENV/chromium for the test that renders `lepton-graph inspect --html` pages (a
# browser, driven by playwright, checks that the graph is drawn). Playwright's own `playwright install chromium`
# downloads from a CDN that some build machines cannot reach; this takes @sparticuz/chromium from the npm registry
# (a Chromium build packaged with the shared libraries it needs, brotli-compressed) and unpacks it with node.
# Best effort: without npm/node or the network it says so and exits 0; the test is then skipped, and says why.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${LEPTON_VENV:-$ROOT/.venv}"
DEST="$VENV/chromium"
VERSION="${LEPTON_CHROMIUM_NPM_VERSION:-147.0.0}"
log() { echo "[chromium $(date +%H:%M:%S)] $*" >&2; }

if [ -x "$DEST/chromium" ] && [ "$(cat "$DEST/.version" 2>/dev/null)" = "$VERSION" ]; then exit 0; fi
if ! command -v npm > /dev/null || ! command -v node > /dev/null; then
  log "npm/node not found: the browser test of inspect --html will be skipped"; exit 0
fi
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
log "fetching @sparticuz/chromium@$VERSION from the npm registry (~70 MB)"
if ! (cd "$tmp" && timeout 300 npm pack --silent "@sparticuz/chromium@$VERSION" > /dev/null 2>&1); then
  log "npm pack failed (no network?): the browser test of inspect --html will be skipped"; exit 0
fi
rm -rf "$DEST" && mkdir -p "$DEST/lib"
tar xzf "$tmp"/sparticuz-chromium-*.tgz -C "$tmp" || { log "bad package"; rm -rf "$DEST"; exit 0; }
node -e '
const fs = require("fs"), z = require("zlib"), [src, dst] = process.argv.slice(1);
for (const f of ["chromium", "al2023.tar", "swiftshader.tar"])
  fs.writeFileSync(dst + "/" + f, z.brotliDecompressSync(fs.readFileSync(src + "/" + f + ".br")));
' "$tmp/package/bin" "$DEST" || { log "unpacking failed"; rm -rf "$DEST"; exit 0; }
tar xf "$DEST/al2023.tar" -C "$DEST" && tar xf "$DEST/swiftshader.tar" -C "$DEST" && rm -f "$DEST"/*.tar
chmod +x "$DEST/chromium"
echo "$VERSION" > "$DEST/.version"
log "ready: $DEST/chromium"
