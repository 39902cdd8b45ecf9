#!/usr/bin/env bash
# Builds sb-lab-go, the Go reference service of the conformance suite, into
# .tools/conformance/go/. Idempotent: the code generators and the binary are rebuilt only
# when a version stamp (pinned versions, a hash of the sources) says they are stale.
set -euo pipefail
cd "$(dirname "$0")/../../.."

OUT=.tools/conformance/go
SRC=conformance/reference/go
mkdir -p "$OUT/bin"
export GOFLAGS=-mod=mod
export GOBIN="$PWD/$OUT/bin"

# Pinned protoc plugins; the Go code of the .proto files is generated with them (the
# generated code is not committed: gen/ is rebuilt from the contract whenever it changes).
PROTOC_GEN_GO_VERSION=v1.36.12
PROTOC_GEN_GO_GRPC_VERSION=v1.6.2
PROTOC_GEN_CONNECT_GO_VERSION=v1.21.1
PLUGINS_STAMP="$PROTOC_GEN_GO_VERSION $PROTOC_GEN_GO_GRPC_VERSION $PROTOC_GEN_CONNECT_GO_VERSION"
if [ "$(cat "$OUT/bin/plugins.version" 2>/dev/null)" != "$PLUGINS_STAMP" ] ||
  [ ! -x "$OUT/bin/protoc-gen-go" ] || [ ! -x "$OUT/bin/protoc-gen-go-grpc" ] || [ ! -x "$OUT/bin/protoc-gen-connect-go" ]; then
  echo "installing protoc-gen-go $PROTOC_GEN_GO_VERSION, protoc-gen-go-grpc $PROTOC_GEN_GO_GRPC_VERSION, protoc-gen-connect-go $PROTOC_GEN_CONNECT_GO_VERSION" >&2
  GOFLAGS= go install "google.golang.org/protobuf/cmd/protoc-gen-go@$PROTOC_GEN_GO_VERSION"
  GOFLAGS= go install "google.golang.org/grpc/cmd/protoc-gen-go-grpc@$PROTOC_GEN_GO_GRPC_VERSION"
  GOFLAGS= go install "connectrpc.com/connect/cmd/protoc-gen-connect-go@$PROTOC_GEN_CONNECT_GO_VERSION"
  echo "$PLUGINS_STAMP" >"$OUT/bin/plugins.version"
fi

PROTOS=(proto/sessionbridge/conformance/v1/lab.proto proto/sessionbridge/conformance/v1/harness.proto proto/sessionbridge/v1/options.proto)
GEN_STAMP="$PLUGINS_STAMP $(cat "${PROTOS[@]}" "$SRC/buf.gen.yaml" | sha256sum | cut -c1-16)"
if [ "$(cat "$SRC/gen/.stamp" 2>/dev/null)" != "$GEN_STAMP" ]; then
  echo "generating Go code for the lab contract" >&2
  rm -rf "$SRC/gen"
  npx buf generate --template "$SRC/buf.gen.yaml" \
    --path proto/sessionbridge/conformance/v1 --path proto/sessionbridge/v1/options.proto
  echo "$GEN_STAMP" >"$SRC/gen/.stamp"
fi

BIN_STAMP="$GEN_STAMP $(cd "$SRC" && find . -name '*.go' -not -path './gen/*' -print0 | sort -z | xargs -0 cat go.mod go.sum | sha256sum | cut -c1-16)"
if [ "$(cat "$OUT/sb-lab-go.version" 2>/dev/null)" != "$BIN_STAMP" ] || [ ! -x "$OUT/sb-lab-go" ]; then
  echo "building sb-lab-go" >&2
  go build -C "$SRC" -trimpath -o "$PWD/$OUT/sb-lab-go" ./cmd/sb-lab-go
  echo "$BIN_STAMP" >"$OUT/sb-lab-go.version"
fi
