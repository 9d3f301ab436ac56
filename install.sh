#!/usr/bin/env bash
# Install autoresearch into ./.venv on a Debian/Ubuntu machine.
#   ./install.sh          the product (and bubblewrap, the trial sandbox, when run as root)
#   ./install.sh --dev    also what the tests need (PostgreSQL server, Node for the MCP
#                         Inspector, pytest, the Claude Code CLI wheel)
set -euo pipefail
cd "$(dirname "$0")"
dev=0; [ "${1:-}" = "--dev" ] && dev=1

need=()
command -v bwrap >/dev/null || need+=(bubblewrap)
if [ $dev = 1 ]; then
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
  command -v npx >/dev/null || need+=(nodejs npm)
fi
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  else
    echo "please install: ${need[*]} (e.g. sudo apt-get install ${need[*]})" >&2
    exit 1
  fi
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install -q --upgrade pip
# torch first, pinned: an unpinned torch can pull a multi-GB build the range below would allow.
.venv/bin/python -c "import torch" 2>/dev/null || .venv/bin/pip install -q "${AR_TORCH:-torch==2.13.0}"
if [ $dev = 1 ]; then
  .venv/bin/pip install -q -e ".[test,clients]"
else
  .venv/bin/pip install -q -e .
fi
echo "installed: $(.venv/bin/autoresearch --help >/dev/null && echo autoresearch) in $(pwd)/.venv"
