#!/usr/bin/env bash
# The Java faulty services are the reference jar run with `--break <name>` (README.md
# beside this file), so building them is building the reference (idempotent, stamped).
set -euo pipefail
cd "$(dirname "$0")/../../.."
bash conformance/reference/java/build.sh
