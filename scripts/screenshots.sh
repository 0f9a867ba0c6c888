#!/usr/bin/env bash
# Regenerate the committed leaderboard pictures from the mini baseline: the markdown table and
# its chart (leaderboards/mini.md, mini.png), the HTML page (mini.html) and its screenshot at a
# 1280 px wide window (mini_html.png, Debian's chromium). Run from anywhere; uses .venv.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="${VENV:-.venv}/bin"
"$BIN/dragonfly-eval" leaderboard leaderboards/mini_baseline --suite mini \
    --markdown leaderboards/mini.md --plot leaderboards/mini.png
"$BIN/dragonfly-eval" leaderboard leaderboards/mini_baseline --suite mini,general \
    --html leaderboards/mini.html
chromium --headless=new --no-sandbox --hide-scrollbars --window-size=1280,2200 \
    --screenshot=leaderboards/mini_html.png "file://$PWD/leaderboards/mini.html" 2>/dev/null
echo "wrote leaderboards/mini.md, mini.png, mini.html and mini_html.png"
