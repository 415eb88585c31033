#!/usr/bin/env bash
# Regenerates docs/img/trace-html.png, the HTML view's screenshot in
# docs/tracing.md: converts a trace with braid --trace-html and shoots the
# page in headless Chromium (flags from MEASURING.md: no network at start).
#   tools/trace_screenshot.sh [trace.json]
# Without a trace it uses spec/fixtures/trace_gen.lua's synthetic pipeline.
set -euo pipefail
cd "$(dirname "$0")/.."
BRAID=${BRAID_EXE:-build/braid}
OUT=${OUT:-docs/img/trace-html.png}
command -v chromium >/dev/null || { echo "chromium is not installed (tools/deps.sh)" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
trace=${1:-}
if [ -z "$trace" ]; then
  trace=$tmp/pipeline.json
  "$BRAID" spec/fixtures/trace_gen.lua 45 >"$trace"
fi
"$BRAID" --trace-html "$trace" -o "$tmp/pipeline.html"
timeout -k 5 90 chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync \
  --user-data-dir="$tmp/profile" --hide-scrollbars --window-size=1200,800 \
  --virtual-time-budget=3000 --screenshot="$tmp/shot.png" "file://$tmp/pipeline.html" 2>"$tmp/err" ||
  { cat "$tmp/err" >&2; exit 1; }
mkdir -p "$(dirname "$OUT")"
cp "$tmp/shot.png" "$OUT"
echo "$OUT: $(wc -c <"$OUT") bytes"
