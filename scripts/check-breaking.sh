#!/usr/bin/env bash
# Runs `buf breaking` against the last landed commit: uncommitted contract changes are
# compared with HEAD, a clean tree with HEAD's parent. SB_BREAKING_AGAINST overrides.
set -euo pipefail
cd "$(dirname "$0")/.."

against=${SB_BREAKING_AGAINST:-}
if [ -z "$against" ]; then
  if ! git rev-parse --verify -q HEAD >/dev/null; then
    echo "buf breaking: no commit to compare with yet"
    exit 0
  fi
  if [ -n "$(git status --porcelain -- proto examples buf.yaml)" ]; then
    against=HEAD
  elif git rev-parse --verify -q HEAD~1 >/dev/null; then
    against=HEAD~1
  else
    echo "buf breaking: HEAD is the first commit; nothing earlier to compare with"
    exit 0
  fi
fi
# cat-file, not `ls-tree | grep -q`: under pipefail, grep closing the pipe early makes
# ls-tree fail with SIGPIPE, and the check would always skip.
if ! git cat-file -e "$against:buf.yaml" 2>/dev/null; then
  echo "buf breaking: $against has no buf.yaml; nothing to compare with"
  exit 0
fi
npx buf breaking --against ".git#ref=$against"
echo "buf breaking: no breaking change against $against"
