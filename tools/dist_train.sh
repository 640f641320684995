#!/usr/bin/env bash
# Multi-GPU training on one machine: bash tools/dist_train.sh CONFIG NGPUS [train.py options]
set -euo pipefail
CONFIG=$1; GPUS=$2; shift 2
PORT=${PORT:-29500}
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-$ROOT/.venv/bin/python}"
exec "$PY" -m torch.distributed.run --nproc_per_node="$GPUS" --master_port="$PORT" \
  "$ROOT/tools/train.py" "$CONFIG" --launcher pytorch "$@"
