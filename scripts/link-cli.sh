#!/usr/bin/env bash
# Puts the `hyperfleet` command on the PATH: a symlink (default /usr/local/bin/hyperfleet) to this
# checkout's bin/hyperfleet.js. Idempotent: a link that already points there is left alone; a
# link elsewhere (an older checkout) is replaced; a file that is not a symlink is never overwritten.
set -euo pipefail
cd "$(dirname "$0")/.."

LINK="${1:-/usr/local/bin/hyperfleet}"
TARGET="$PWD/bin/hyperfleet.js"
SUDO=""; [[ $(id -u) -ne 0 && ! -w "$(dirname "$LINK")" ]] && SUDO="sudo"

if [[ -L "$LINK" && "$(readlink "$LINK")" == "$TARGET" ]]; then
  echo "$LINK -> $TARGET (up to date)"
elif [[ -e "$LINK" && ! -L "$LINK" ]]; then
  echo "setup: $LINK exists and is not a symlink; leaving it alone (run $TARGET directly, or remove it)" >&2
  exit 1
else
  $SUDO ln -sfn "$TARGET" "$LINK"
  echo "$LINK -> $TARGET"
fi
