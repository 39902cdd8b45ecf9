#!/usr/bin/env bash
# Installs the command-line tools the tests drive, into .tools/bin:
# grpcurl (reflection and calls from a client that knows nothing but the wire), the
# gRPC interop client and server (below), nats-server (the tests' NATS fixture starts it;
# Debian's 2.9 is too old) and the nats CLI.
set -euo pipefail
cd "$(dirname "$0")/.."

mkdir -p .tools/bin
export GOBIN="$PWD/.tools/bin"
GRPCURL_VERSION=v1.9.3
# `go install` builds carry no version string, so a stamp file records what is there.
if [ "$(cat .tools/bin/grpcurl.version 2>/dev/null)" != "$GRPCURL_VERSION" ] || [ ! -x .tools/bin/grpcurl ]; then
  echo "installing grpcurl $GRPCURL_VERSION"
  go install "github.com/fullstorydev/grpcurl/cmd/grpcurl@$GRPCURL_VERSION"
  echo "$GRPCURL_VERSION" >.tools/bin/grpcurl.version
fi

# sb-grpc-go-client: the grpc-go client the session-rule tests drive (test/go/grpc-client,
# grpc-go pinned in its go.mod). Built from source, so its stamp is a hash of that source.
GRPC_GO_CLIENT_DIR=test/go/grpc-client
GRPC_GO_CLIENT_STAMP="$(cat "$GRPC_GO_CLIENT_DIR"/go.mod "$GRPC_GO_CLIENT_DIR"/go.sum "$GRPC_GO_CLIENT_DIR"/*.go | sha256sum | cut -d' ' -f1)"
if [ "$(cat .tools/bin/sb-grpc-go-client.version 2>/dev/null)" != "$GRPC_GO_CLIENT_STAMP" ] || [ ! -x .tools/bin/sb-grpc-go-client ]; then
  echo "building sb-grpc-go-client"
  go build -C "$GRPC_GO_CLIENT_DIR" -trimpath -o "$PWD/.tools/bin/sb-grpc-go-client" .
  echo "$GRPC_GO_CLIENT_STAMP" >.tools/bin/sb-grpc-go-client.version
fi

# sb-deadline-process: a grpc-go server whose handler outlives the caller's deadline, so
# grpc-go's own timer resets the stream (test/go/deadline-process, grpc-go pinned in its
# go.mod). Built from source, so its stamp is a hash of that source.
DEADLINE_PROCESS_DIR=test/go/deadline-process
DEADLINE_PROCESS_STAMP="$(cat "$DEADLINE_PROCESS_DIR"/go.mod "$DEADLINE_PROCESS_DIR"/go.sum "$DEADLINE_PROCESS_DIR"/*.go | sha256sum | cut -d' ' -f1)"
if [ "$(cat .tools/bin/sb-deadline-process.version 2>/dev/null)" != "$DEADLINE_PROCESS_STAMP" ] || [ ! -x .tools/bin/sb-deadline-process ]; then
  echo "building sb-deadline-process"
  go build -C "$DEADLINE_PROCESS_DIR" -trimpath -o "$PWD/.tools/bin/sb-deadline-process" .
  echo "$DEADLINE_PROCESS_STAMP" >.tools/bin/sb-deadline-process.version
fi

# gRPC interop: grpc-go's interop client (pinned in test/go/interop/go.mod); a tool that
# serves grpc-go's TestService on 127.0.0.1 and runs the compression cases grpc-go's
# interop client lacks; a dump of the interop .proto sources compiled into grpc-go. The
# stamp holds the pinned version and a hash of the module's sources, so edits rebuild.
INTEROP_DIR=test/go/interop
INTEROP_VERSION="$(cd "$INTEROP_DIR" && go list -m -f '{{.Version}}' google.golang.org/grpc)"
INTEROP_STAMP="$INTEROP_VERSION $(cd "$INTEROP_DIR" && cat go.mod go.sum ./*/*.go | sha256sum | cut -c1-16)"
if [ "$(cat .tools/bin/interop.version 2>/dev/null)" != "$INTEROP_STAMP" ] ||
  [ ! -x .tools/bin/interop-client ] || [ ! -x .tools/bin/interop-protodump ] ||
  [ ! -x .tools/bin/interop-compression ]; then
  echo "building gRPC interop tools (grpc-go $INTEROP_VERSION)"
  (
    cd "$INTEROP_DIR"
    go build -o "$GOBIN/interop-client" google.golang.org/grpc/interop/client
    go build -o "$GOBIN/interop-protodump" ./protodump
    go build -o "$GOBIN/interop-compression" ./compression
  )
  echo "$INTEROP_STAMP" >.tools/bin/interop.version
fi

# nats-server and the nats CLI, built from their Go modules at pinned versions.
NATS_SERVER_VERSION=v2.15.3
if [ "$(cat .tools/bin/nats-server.version 2>/dev/null)" != "$NATS_SERVER_VERSION" ] || [ ! -x .tools/bin/nats-server ]; then
  echo "installing nats-server $NATS_SERVER_VERSION"
  go install "github.com/nats-io/nats-server/v2@$NATS_SERVER_VERSION"
  echo "$NATS_SERVER_VERSION" >.tools/bin/nats-server.version
fi
NATS_CLI_VERSION=v0.5.1
if [ "$(cat .tools/bin/nats.version 2>/dev/null)" != "$NATS_CLI_VERSION" ] || [ ! -x .tools/bin/nats ]; then
  echo "installing nats $NATS_CLI_VERSION"
  go install "github.com/nats-io/natscli/nats@$NATS_CLI_VERSION"
  echo "$NATS_CLI_VERSION" >.tools/bin/nats.version
fi

# Connect conformance: the runner and the reference server of connectrpc.com/conformance,
# at a pinned version, plus the suite's .proto files (the bridge serves its
# ConformanceService as a contract in front of the reference server).
CONNECT_CONFORMANCE_VERSION=v1.0.7
if [ "$(cat .tools/bin/connectconformance.version 2>/dev/null)" != "$CONNECT_CONFORMANCE_VERSION" ] ||
  [ ! -x .tools/bin/connectconformance ] || [ ! -x .tools/bin/referenceserver ] ||
  [ ! -f .tools/connect-conformance/proto/connectrpc/conformance/v1/service.proto ]; then
  echo "installing connectrpc conformance $CONNECT_CONFORMANCE_VERSION"
  go install "connectrpc.com/conformance/cmd/connectconformance@$CONNECT_CONFORMANCE_VERSION"
  go install "connectrpc.com/conformance/cmd/referenceserver@$CONNECT_CONFORMANCE_VERSION"
  module_dir="$(go env GOMODCACHE)/connectrpc.com/conformance@$CONNECT_CONFORMANCE_VERSION"
  rm -rf .tools/connect-conformance
  mkdir -p .tools/connect-conformance
  cp -R "$module_dir/proto" .tools/connect-conformance/proto
  chmod -R u+w .tools/connect-conformance
  echo "$CONNECT_CONFORMANCE_VERSION" >.tools/bin/connectconformance.version
fi

# Chromium renders the conformance suite's HTML report in a test (driven by puppeteer-core,
# which downloads no browser of its own). Debian's package, installed when missing.
if ! command -v chromium >/dev/null 2>&1; then
  echo "installing chromium (apt-get)"
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && apt-get install -y -qq chromium >/dev/null
  else
    sudo apt-get update -qq && sudo apt-get install -y -qq chromium >/dev/null
  fi
fi
