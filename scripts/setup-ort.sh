#!/usr/bin/env bash
# Installs ONNX Runtime (the PyPI wheel's libonnxruntime.so) plus onnx/numpy into the
# project-local virtualenv `.venv` at the repo root. Idempotent: exits fast when present.
# voxflow finds the library there by itself (see nodes/kernels/onnx, `ort_library`).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
ORT_VERSION="1.31.1"
ONNX_VERSION="1.23.2"
NUMPY_VERSION="2.3.5"
PYTHON="${PYTHON:-python3}"

have_all() {
    [ -x "$VENV/bin/python" ] || return 1
    compgen -G "$VENV/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so*" >/dev/null || return 1
    "$VENV/bin/python" - "$ORT_VERSION" "$ONNX_VERSION" "$NUMPY_VERSION" <<'PY' >/dev/null 2>&1
import sys
from importlib.metadata import version
want = dict(zip(["onnxruntime", "onnx", "numpy"], sys.argv[1:]))
sys.exit(0 if all(version(p) == v for p, v in want.items()) else 1)
PY
}

if have_all; then
    echo "onnxruntime $ORT_VERSION already installed in $VENV"
else
    if [ ! -x "$VENV/bin/python" ]; then
        "$PYTHON" -m venv "$VENV"
    fi
    "$VENV/bin/python" -m pip install --disable-pip-version-check -q \
        "onnxruntime==$ORT_VERSION" "onnx==$ONNX_VERSION" "numpy==$NUMPY_VERSION"
    have_all || { echo "setup-ort: install finished but libonnxruntime.so is missing" >&2; exit 1; }
fi
lib=$(compgen -G "$VENV/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so*" | sort | tail -n 1)
echo "ONNX Runtime library: $lib"
