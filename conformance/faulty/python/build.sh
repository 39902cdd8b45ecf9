#!/usr/bin/env bash
# The faulty Python services run on the reference's venv and generated code: building the
# reference (idempotent, version-stamped) is all they need.
set -euo pipefail
cd "$(dirname "$0")/../../.."
bash conformance/reference/python/build.sh
