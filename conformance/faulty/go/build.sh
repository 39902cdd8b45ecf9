#!/usr/bin/env bash
# Builds sb-lab-go-faulty (the Go reference service with one `--break <name>` deviation)
# into .tools/conformance/go/. It builds on the reference's generated code, so the
# reference's build runs first (idempotent); a stamp skips an up-to-date binary.
set -euo pipefail
cd "$(dirname "$0")/../../.."

bash conformance/reference/go/build.sh
OUT=.tools/conformance/go
SRC=conformance/faulty/go
export GOFLAGS=-mod=mod
STAMP="$(cat "$OUT/sb-lab-go.version") $(cd "$SRC" && cat go.mod go.sum ./*.go | sha256sum | cut -c1-16)"
if [ "$(cat "$OUT/sb-lab-go-faulty.version" 2>/dev/null)" != "$STAMP" ] || [ ! -x "$OUT/sb-lab-go-faulty" ]; then
  echo "building sb-lab-go-faulty" >&2
  go build -C "$SRC" -trimpath -o "$PWD/$OUT/sb-lab-go-faulty" .
  echo "$STAMP" >"$OUT/sb-lab-go-faulty.version"
fi
