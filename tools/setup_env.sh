#!/usr/bin/env bash
# One-step, idempotent environment setup for the nucleus toolkit.
#
#   bash tools/setup_env.sh            # runtime + test requirements into ./.venv
#
# What it does, and why:
#  * creates ./.venv (inside the checkout, git-ignored);
#  * installs torch: reuses a torch the base interpreter already has (e.g. a CUDA build on a GPU box),
#    otherwise the pinned CPU build torch==$TORCH_VERSION;
#  * installs the pinned requirements (requirements.txt, requirements-test.txt);
#  * installs mmcv $MMCV_VERSION *with its compiled ops*. MMCV publishes no wheels to PyPI, so the
#    sdist is compiled once (8-10 min on 2 cores: ~100 C++ files of CPU kernels against the torch
#    headers) and the wheel is cached outside the checkout, keyed by mmcv, torch (+cpu/cuda) and Python
#    version. Every later run installs from that cache in seconds.
#  * a stamp file records what was installed; a second run with everything in place only verifies the
#    imports and exits.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${NUCLEUS_VENV:-$ROOT/.venv}"
PY_BASE="${PYTHON:-python3}"
TORCH_VERSION="2.13.0"
MMCV_VERSION="2.1.0"
SETUPTOOLS_SPEC="setuptools>=77.0.3,<81"   # 81 removed pkg_resources, which mmcv's setup.py imports
CACHE_ROOT="${NUCLEUS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/nucleus-seg}"

log() { printf '[setup] %s\n' "$*" >&2; }
die() { printf '[setup] error: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------- venv
if [ ! -x "$VENV/bin/python" ]; then
  venv_args=()
  # Reuse a torch that the base interpreter already has (a CUDA build, typically) instead of
  # replacing it with the CPU wheel.
  if "$PY_BASE" -c "import torch" >/dev/null 2>&1; then
    log "base interpreter has torch $("$PY_BASE" -c 'import torch;print(torch.__version__)'); venv will see it"
    venv_args+=(--system-site-packages)
  fi
  log "creating virtual environment $VENV"
  "$PY_BASE" -m venv "${venv_args[@]}" "$VENV"
fi
PY="$VENV/bin/python"
PIP=("$PY" -m pip --disable-pip-version-check -q)

REQ_HASH="$(cat "$ROOT/requirements.txt" "$ROOT/requirements-test.txt" "$ROOT/tools/setup_env.sh" | sha256sum | cut -c1-16)"
STAMP="$VENV/.nucleus-setup-$REQ_HASH"

verify() {
  "$PY" - <<'PYEOF'
import mmcv, mmdet, mmengine, torch, pycocotools
from mmcv.ops import nms, RoIAlign  # compiled ops must load
print(f"[setup] ok: torch {torch.__version__}, mmcv {mmcv.__version__} (ops), "
      f"mmdet {mmdet.__version__}, mmengine {mmengine.__version__}")
PYEOF
}

if [ -f "$STAMP" ] && verify 2>/dev/null; then
  exit 0
fi

# ---------------------------------------------------------------- torch
if ! "$PY" -c "import torch" >/dev/null 2>&1; then
  log "installing torch==$TORCH_VERSION"
  "${PIP[@]}" install "torch==$TORCH_VERSION"
fi

# ---------------------------------------------------------------- pinned requirements
log "installing pinned requirements"
"${PIP[@]}" install "$SETUPTOOLS_SPEC" wheel==0.45.1 ninja==1.13.0 \
  -r "$ROOT/requirements.txt" -r "$ROOT/requirements-test.txt"

# ---------------------------------------------------------------- mmcv with ops
# (tags computed after numpy is installed: importing torch without it prints a warning)
TORCH_TAG="$("$PY" -c 'import torch; v=torch.__version__.split("+")[0]; c=torch.version.cuda; print("torch" + v + "-" + ("cu" + c.replace(".", "") if c else "cpu"))')"
PY_TAG="$("$PY" -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')"
WHEEL_DIR="$CACHE_ROOT/wheels/mmcv-$MMCV_VERSION-$TORCH_TAG-$PY_TAG"
have_mmcv() { "$PY" -c "import mmcv, mmcv.ops; assert mmcv.__version__ == '$MMCV_VERSION'" >/dev/null 2>&1; }

if ! have_mmcv; then
  if ! ls "$WHEEL_DIR"/mmcv-*.whl >/dev/null 2>&1; then
    CUDA_FLAG=0
    if "$PY" -c "import torch,sys; sys.exit(0 if torch.version.cuda else 1)" && command -v nvcc >/dev/null; then
      CUDA_FLAG=1
    fi
    log "no cached mmcv wheel in $WHEEL_DIR: building mmcv $MMCV_VERSION from source (FORCE_CUDA=$CUDA_FLAG)"
    log "this is slow (~8-10 min on 2 cores) because it compiles mmcv's C++ ops; it happens once per machine"
    mkdir -p "$CACHE_ROOT/wheels"
    BUILD_TMP="$(mktemp -d "$CACHE_ROOT/wheels/.build-XXXXXX")"
    # Nothing half-built ever lands in the cache: the wheel is moved in with one rename at the end.
    trap 'rm -rf "$BUILD_TMP"' EXIT
    "${PIP[@]}" download --no-deps --no-binary :all: "mmcv==$MMCV_VERSION" -d "$BUILD_TMP/src"
    BUILD_LOG="$BUILD_TMP/build.log"
    start=$(date +%s)
    (
      export MMCV_WITH_OPS=1 FORCE_CUDA=$CUDA_FLAG MAX_JOBS="${MAX_JOBS:-$(nproc)}"
      "$PY" -m pip --disable-pip-version-check wheel -v --no-build-isolation --no-deps \
        -w "$BUILD_TMP/out" "$BUILD_TMP"/src/mmcv-*.tar.gz
    ) >"$BUILD_LOG" 2>&1 &
    pid=$!
    # Progress: ninja prints "[k/n] ..." per translation unit (pip -v indents it).
    last=""
    while kill -0 "$pid" 2>/dev/null; do
      sleep 15
      cur="$(grep -oE '^[[:space:]]*\[[0-9]+/[0-9]+\]' "$BUILD_LOG" | tail -1 | tr -d '[:space:]' || true)"
      el=$(( $(date +%s) - start ))
      if [ -n "$cur" ] && [ "$cur" != "$last" ]; then log "mmcv build: compiled $cur files (${el}s)"; last="$cur";
      else log "mmcv build: still working (${el}s)"; fi
    done
    if ! wait "$pid"; then
      tail -n 40 "$BUILD_LOG" >&2
      die "mmcv build failed (full log above was $BUILD_LOG; nothing was cached)"
    fi
    WHEEL_TMP="$CACHE_ROOT/wheels/.tmp-$(basename "$WHEEL_DIR")-$$"
    mkdir -p "$WHEEL_TMP" && cp "$BUILD_TMP"/out/mmcv-*.whl "$WHEEL_TMP"/
    rm -rf "$WHEEL_DIR" && mv "$WHEEL_TMP" "$WHEEL_DIR"
    rm -rf "$BUILD_TMP"; trap - EXIT
    log "mmcv wheel built in $(( $(date +%s) - start ))s and cached in $WHEEL_DIR"
  fi
  log "installing mmcv from $WHEEL_DIR"
  "${PIP[@]}" install --no-deps --force-reinstall "$WHEEL_DIR"/mmcv-*.whl
  # mmcv's own runtime deps (opencv, yapf, addict, ...) without letting pip touch torch
  "${PIP[@]}" install addict yapf==0.43.0 packaging pyyaml
fi

# The editable install makes `import nucleus_seg` work from any directory (tests, tools, custom_imports).
"${PIP[@]}" install --no-deps --no-build-isolation -e "$ROOT"

verify
rm -f "$VENV"/.nucleus-setup-* && touch "$STAMP"
log "environment ready: $VENV"
