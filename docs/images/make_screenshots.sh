#!/usr/bin/env bash
# Screenshots of the demo's report and map page for the README (headless Chromium).
# Usage: make demo && bash docs/images/make_screenshots.sh [demo_output]
set -euo pipefail
out="$(cd "$(dirname "$0")" && pwd)"
report="$(cd "${1:-demo_output}/latest/run/report" && pwd)"
profile="$(mktemp -d)"
trap 'rm -rf "$profile" "$report/_strata_only.html"' EXIT
shot() {  # name url width,height
  chromium --headless --no-sandbox --disable-gpu --no-first-run --hide-scrollbars \
    --user-data-dir="$profile" --virtual-time-budget=8000 --window-size="$3" \
    --screenshot="$out/$1.png" "$2" 2>/dev/null
}
shot report_summary "file://$report/report.html" 1300,900
# The stratum section alone (headless screenshots do not scroll to an anchor).
sed 's|</head>|<style>h1,section{display:none}#stratum-stocks{display:block}</style></head>|' \
  "$report/report.html" > "$report/_strata_only.html"
shot report_strata "file://$report/_strata_only.html" 1300,900
shot map_page "file://$report/map.html#layer=SOC%20sd%200-5cm&pixel=250,300" 1300,800
ls -l "$out"/*.png
