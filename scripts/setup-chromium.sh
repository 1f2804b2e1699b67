#!/usr/bin/env bash
# Headless Chromium for the report test (tests/report.rs opens the HTML report in it).
# Debian/Ubuntu package `chromium`; installs it as root, else says what to run.
set -euo pipefail

if command -v chromium >/dev/null 2>&1; then
    echo "chromium: $(command -v chromium)"
    exit 0
fi
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium
    echo "chromium: $(command -v chromium)"
else
    echo "chromium is missing; the report test needs it. Install it with:" >&2
    echo "    sudo apt-get install chromium    (Debian/Ubuntu package \`chromium\`)" >&2
    exit 1
fi
