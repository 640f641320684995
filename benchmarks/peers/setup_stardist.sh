#!/usr/bin/env bash
# Separate, optional environment for the StarDist peer benchmark (benchmarks/bench_peer_stardist.py).
#
#   bash benchmarks/peers/setup_stardist.sh        # -> ~/.cache/nucleus-seg/venv-stardist
#
# StarDist is a peer to measure against, never a dependency of nucleus_seg: it needs TensorFlow with
# Keras 2 and numpy < 2, which cannot live beside the project's torch / numpy 2 stack, so it gets its
# own virtualenv outside the checkout. Idempotent: a venv whose stamp matches these pins is only
# checked (a few seconds); anything else (missing, half-built, other pins) is rebuilt.
#
# Pins, and why these: stardist 0.9.2 is the current release; it builds on csbdeep, whose Keras-2 code
# path is what StarDist is tested with. tensorflow-cpu 2.15.1 is the last TensorFlow that ships Keras 2
# as tf.keras (2.16+ switch to Keras 3) and has Python 3.11 wheels; it needs numpy < 2.
set -euo pipefail

CACHE_ROOT="${NUCLEUS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/nucleus-seg}"
VENV="${STARDIST_VENV:-$CACHE_ROOT/venv-stardist}"
PY_BASE="${PYTHON:-python3.11}"
PINS=(stardist==0.9.2 csbdeep==0.8.2 tensorflow-cpu==2.15.1 "numpy<2")
STAMP="$VENV/.nucleus-stardist-$(printf '%s\n' "${PINS[@]}" | sha256sum | cut -c1-16)"

log() { printf '[setup-stardist] %s\n' "$*" >&2; }

verify() {
  "$VENV/bin/python" - <<'PYEOF'
import os
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import stardist, csbdeep, tensorflow as tf, numpy
from stardist.models import StarDist2D, Config2D  # noqa: F401  (the compiled extension must load)
print(f"[setup-stardist] ok: stardist {stardist.__version__}, csbdeep {csbdeep.__version__}, "
      f"tensorflow {tf.__version__}, numpy {numpy.__version__}")
PYEOF
}

if [ -f "$STAMP" ] && verify 2>/dev/null; then
  echo "$VENV/bin/python"
  exit 0
fi

command -v "$PY_BASE" >/dev/null || { log "error: $PY_BASE not found (StarDist's TensorFlow 2.15 needs Python 3.9-3.11; set PYTHON=...)"; exit 1; }
# Built in place: a venv is not relocatable, so an unfinished one (no stamp) is removed and rebuilt.
if [ -d "$VENV" ]; then
  log "rebuilding $VENV (no stamp for these pins)"
  rm -rf "$VENV"
fi
log "creating $VENV with $("$PY_BASE" --version)"
mkdir -p "$(dirname "$VENV")"
"$PY_BASE" -m venv "$VENV"
"$VENV/bin/python" -m pip install --disable-pip-version-check -q --upgrade pip
log "installing ${PINS[*]} (about 600 MB)"
"$VENV/bin/python" -m pip install --disable-pip-version-check -q "${PINS[@]}"
verify
touch "$STAMP"
echo "$VENV/bin/python"
