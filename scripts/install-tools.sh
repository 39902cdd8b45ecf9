#!/usr/bin/env bash
# Installs the command-line tools the tests drive, into .tools/bin:
# grpcurl (reflection and calls from a client that knows nothing but the wire).
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
