#!/usr/bin/env bash
# README command 1: set everything up (idempotent) and run the end-to-end demo on the bundled sample.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash tools/setup_env.sh
exec .venv/bin/python tools/demo.py "$@"
