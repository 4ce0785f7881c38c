#!/bin/sh
# Copy the dashboard's npm libraries (installed by `npm ci`) into web/vendor/, which is not
# committed: Chart.js as its UMD build (window.Chart) and canvas-confetti as an ES module.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
nm="$root/node_modules"
for f in chart.js/dist/chart.umd.min.js canvas-confetti/dist/confetti.module.mjs; do
  [ -f "$nm/$f" ] || { echo "vendor-web.sh: $nm/$f is missing: run npm ci first" >&2; exit 1; }
done
mkdir -p "$root/web/vendor"
cp "$nm/chart.js/dist/chart.umd.min.js" "$root/web/vendor/chart.umd.min.js"
cp "$nm/canvas-confetti/dist/confetti.module.mjs" "$root/web/vendor/confetti.module.mjs"
