#!/usr/bin/env bash
# Installs the command-line tools the tests drive, into .tools/bin:
# grpcurl (reflection and calls from a client that knows nothing but the wire), nats-server
# (the tests' NATS fixture starts it; Debian's 2.9 is too old) and the nats CLI.
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
