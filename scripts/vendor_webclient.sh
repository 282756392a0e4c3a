#!/usr/bin/env bash
# Copy the web client's third-party assets from tests/browser/node_modules into
# webclient/vendor/, which is committed: nodes serve the page with no internet and no
# build step. Run after changing tests/browser/package.json (npm install updates the lock).
# Usage: scripts/vendor_webclient.sh
set -euo pipefail
cd "$(dirname "$0")/../tests/browser"
if [ ! -f node_modules/vue/package.json ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi
out=../../webclient/vendor
rm -rf "$out"
mkdir -p "$out/licenses"
copy() { cp "node_modules/$1" "$out/$2"; }
copy vue/dist/vue.global.prod.js vue.global.prod.js
copy bootstrap/dist/css/bootstrap.min.css bootstrap.min.css
copy js-yaml/dist/js-yaml.min.js js-yaml.min.js
copy vue/LICENSE licenses/vue.LICENSE
copy bootstrap/LICENSE licenses/bootstrap.LICENSE
copy js-yaml/LICENSE licenses/js-yaml.LICENSE
# Source-map comments point at files that are not vendored; drop them so that the
# browser does not ask the node for them.
sed -i 's#/\*\# sourceMappingURL=[^*]*\*/##; s#//\# sourceMappingURL=.*$##' "$out"/*.js "$out"/*.css
{
  echo "# Vendored by scripts/vendor_webclient.sh from tests/browser/package-lock.json"
  for pkg in vue bootstrap js-yaml; do
    node -e "const p=require('./node_modules/$pkg/package.json');console.log(p.name+' '+p.version+' ('+p.license+')')"
  done
} >"$out/VERSIONS.txt"
(cd "$out" && sha256sum ./*.js ./*.css >SHA256SUMS)
cat "$out/VERSIONS.txt"
