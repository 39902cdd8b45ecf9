#!/usr/bin/env bash
# The whole test suite, as the README's test command and CI run it.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-tools.sh
bash scripts/build-conformance.sh
npm run build
npx biome check .
npx buf lint
bash scripts/check-generated.sh
bash scripts/check-breaking.sh
npx mocha
