#!/usr/bin/env bash
# Fails when sdk/gen differs from what `buf generate` produces now: generated code is
# never edited by hand and never stale.
set -euo pipefail
cd "$(dirname "$0")/.."

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
npx buf generate --template buf.gen.yaml -o "$tmp"
if ! diff -r "$tmp/sdk/gen" sdk/gen >"$tmp/diff.txt"; then
  echo "sdk/gen is stale or was edited by hand; run 'npm run generate' and commit the result:" >&2
  head -n 40 "$tmp/diff.txt" >&2
  exit 1
fi
echo "generated code is up to date"
