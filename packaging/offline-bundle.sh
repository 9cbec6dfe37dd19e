#!/bin/sh
# Build an offline bundle of this checkout, for a machine with no network (docs/air-gapped.md):
#
#   packaging/offline-bundle.sh DIR [--extras tui,mcp] [--platform TAG] [--python 3.11] ...
#
# The same as `edge-runner bundle DIR --source <this checkout> ...`, for people who have the
# sources but not edge-runner installed. PYTHON picks the interpreter (default python3; the
# bundle is for its version and platform unless --python/--platform say otherwise). Where that
# Python lacks edge-runner's dependencies, they go into a throwaway venv first (from the
# package index, which building a bundle needs anyway, or from --find-links WHEELS).
set -eu

checkout=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-python3}

if PYTHONPATH="$checkout" "$python" -c 'from edge_runner.cli.main import build_parser; build_parser()' 2>/dev/null; then
    PYTHONPATH="$checkout${PYTHONPATH:+:$PYTHONPATH}"
    export PYTHONPATH
    exec "$python" -m edge_runner bundle --source "$checkout" "$@"
fi

# --find-links WHEELS given: install the builder from those wheels too (no index).
links=""
previous=""
for arg in "$@"; do
    case $previous in --find-links) links="$links --no-index --find-links $arg" ;; esac
    case $arg in --find-links=*) links="$links --no-index --find-links ${arg#--find-links=}" ;; esac
    previous=$arg
done

work=$(mktemp -d "${TMPDIR:-/tmp}/edge-runner-bundle.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM
echo "offline-bundle.sh: $python cannot import edge-runner; installing it into $work first" >&2
"$python" -m venv "$work/venv"
# shellcheck disable=SC2086  # $links is a list of words on purpose
"$work/venv/bin/python" -m pip install -q --disable-pip-version-check $links "$checkout"
"$work/venv/bin/python" -m edge_runner bundle --source "$checkout" "$@"
