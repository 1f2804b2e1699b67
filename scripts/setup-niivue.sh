#!/usr/bin/env bash
# NiiVue (npm package @niivue/niivue, BSD-2-Clause), the WebGL viewer that the HTML report
# inlines: unpacks the pinned package into `.niivue/package` at the repo root. The build
# reads its single-file bundle `build/index.min.js` (nodes/build.rs), so this runs before
# cargo builds (`make build`, `make test`, `make demo`). Idempotent: exits fast when present.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DIR="$ROOT/.niivue"
VERSION="0.69.0"
# `npm pack` integrity of @niivue/niivue@0.69.0: a re-published or altered tarball is refused.
INTEGRITY="sha512-YMjQvJgD1W2b7DuoxkwlC4VxbrgIePRJ5qyQzXKxi2v2MBVg285P/CIQyg46oDDGDIcaNlbd+MhtO/edMbXJkA=="

installed() {
    [ -f "$DIR/package/build/index.min.js" ] &&
        grep -q "\"version\": \"$VERSION\"" "$DIR/package/package.json" 2>/dev/null
}

if installed; then
    echo "niivue $VERSION already in $DIR/package"
    exit 0
fi
if ! command -v npm >/dev/null 2>&1; then
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends npm
    else
        echo "npm is missing; the report's viewer needs it to fetch NiiVue. Install it with:" >&2
        echo "    sudo apt-get install npm    (Debian/Ubuntu package \`npm\`)" >&2
        exit 1
    fi
fi
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent --json "@niivue/niivue@$VERSION" >pack.json)
got="$(node -p 'require(process.argv[1])[0].integrity' "$tmp/pack.json")"
if [ "$got" != "$INTEGRITY" ]; then
    echo "setup-niivue: @niivue/niivue@$VERSION has integrity $got, expected $INTEGRITY" >&2
    exit 1
fi
tar -xzf "$tmp"/niivue-niivue-"$VERSION".tgz -C "$tmp"
rm -rf "$DIR"
mkdir -p "$DIR"
mv "$tmp/package" "$DIR/package"
installed || { echo "setup-niivue: $DIR/package/build/index.min.js missing after unpacking" >&2; exit 1; }
echo "niivue $VERSION: $DIR/package/build/index.min.js"
