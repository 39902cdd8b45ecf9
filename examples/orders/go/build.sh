#!/usr/bin/env bash
# Builds the payments process (Go, nats.go pinned in go.mod/go.sum) into
# .tools/examples/bin/orders-payments. Idempotent: the stamp is a hash of the sources, so
# an edit rebuilds and an unchanged tree does nothing. Modules come from the Go module
# proxy and are checked against go.sum.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
out="$root/.tools/examples/bin"
mkdir -p "$out"
stamp="$(cat "$here"/go.mod "$here"/go.sum "$here"/*.go | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$out/orders-payments.version" 2>/dev/null)" != "$stamp" ] || [ ! -x "$out/orders-payments" ]; then
  echo "building orders-payments (Go)" >&2
  GOFLAGS=-mod=readonly go build -C "$here" -trimpath -o "$out/orders-payments" .
  echo "$stamp" >"$out/orders-payments.version"
fi
