#!/usr/bin/env bash
# Builds every conformance service (reference and faulty) with its own toolchain. Each
# build.sh is idempotent, pins its versions and puts its outputs under .tools/conformance/.
set -euo pipefail
cd "$(dirname "$0")/.."
shopt -s nullglob
for build in conformance/reference/*/build.sh conformance/faulty/*/build.sh; do
  echo "conformance: ${build}" >&2
  bash "${build}"
done
