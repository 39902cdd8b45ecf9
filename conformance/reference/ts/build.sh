#!/usr/bin/env bash
# The TypeScript reference service is compiled by the repository's own tsc (npm run build)
# into dist/conformance/reference/ts/; this builds it when that output is absent.
set -euo pipefail
cd "$(dirname "$0")/../../.."
if [ ! -f dist/conformance/reference/ts/main.js ]; then
  npm run build
fi
