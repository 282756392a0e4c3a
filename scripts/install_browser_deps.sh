#!/usr/bin/env bash
# Install what the web client's browser tests need, idempotently: Debian's chromium
# (the tests drive /usr/bin/chromium; Playwright's own browser download does not work
# offline) and playwright-core from tests/browser/package-lock.json into
# tests/browser/node_modules (kept out of webclient/, which nodes serve).
# Usage: scripts/install_browser_deps.sh   (as root, or with sudo available)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

need_pkgs=()
[ -x /usr/bin/chromium ] || need_pkgs+=(chromium)
command -v node >/dev/null 2>&1 || need_pkgs+=(nodejs)
command -v npm >/dev/null 2>&1 || need_pkgs+=(npm)
# Fonts with wide glyph coverage so that screenshots render text, not boxes.
[ -d /usr/share/fonts/truetype/dejavu ] || need_pkgs+=(fonts-dejavu-core)
if [ ${#need_pkgs[@]} -gt 0 ]; then
  say "installing Debian packages: ${need_pkgs[*]}"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends \
    "${need_pkgs[@]}" >/dev/null
fi
/usr/bin/chromium --version >/dev/null 2>&1 || { echo "chromium does not run" >&2; exit 1; }
node_major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$node_major" -lt 20 ]; then
  echo "Node.js $(node --version) is too old for playwright-core; install Node.js 20 or newer" >&2
  exit 1
fi

lock="$ROOT/tests/browser/package-lock.json"
stamp="$ROOT/tests/browser/node_modules/.motey-lock.sha256"
want=$(sha256sum "$lock" | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ] \
  || [ ! -f "$ROOT/tests/browser/node_modules/playwright-core/package.json" ]; then
  say "installing the web client's node packages from package-lock.json"
  # playwright-core downloads no browser; PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD guards anyway.
  (cd "$ROOT/tests/browser" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund \
    --loglevel=error)
  echo "$want" >"$stamp"
fi
