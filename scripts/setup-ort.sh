#!/usr/bin/env bash
# Installs ONNX Runtime (the PyPI wheel's libonnxruntime.so) plus onnx/numpy into the
# project-local virtualenv `.venv` at the repo root. Idempotent: exits fast when present.
# voxflow finds the library there by itself (see nodes/kernels/onnx, `ort_library`).
#
# ORT=cpu (default): the `onnxruntime` wheel (CPU only).
# ORT=gpu: the `onnxruntime-gpu` wheel instead (CUDA 13, cuDNN 9; its CUDA provider library
#          lies beside libonnxruntime.so); `make setup ORT=gpu`. The CUDA and cuDNN libraries
#          themselves come from the machine (e.g. its PyTorch cu130) via LD_LIBRARY_PATH.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
ORT_VERSION="1.31.1"
ONNX_VERSION="1.23.2"
NUMPY_VERSION="2.3.5"
PYTHON="${PYTHON:-python3}"
case "${ORT:-cpu}" in
    cpu) ORT_PACKAGE=onnxruntime; OTHER_PACKAGE=onnxruntime-gpu ;;
    gpu) ORT_PACKAGE=onnxruntime-gpu; OTHER_PACKAGE=onnxruntime ;;
    *) echo "setup-ort: ORT=${ORT} is neither cpu nor gpu" >&2; exit 2 ;;
esac

have_all() {
    [ -x "$VENV/bin/python" ] || return 1
    compgen -G "$VENV/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so*" >/dev/null || return 1
    "$VENV/bin/python" - "$ORT_PACKAGE" "$ORT_VERSION" "$ONNX_VERSION" "$NUMPY_VERSION" <<'PY' >/dev/null 2>&1
import sys
from importlib.metadata import version
want = dict(zip([sys.argv[1], "onnx", "numpy"], sys.argv[2:]))
sys.exit(0 if all(version(p) == v for p, v in want.items()) else 1)
PY
}

if have_all; then
    echo "$ORT_PACKAGE $ORT_VERSION already installed in $VENV"
else
    if [ ! -x "$VENV/bin/python" ]; then
        "$PYTHON" -m venv "$VENV"
    fi
    # Both wheels install the module `onnxruntime`: when switching, remove both, then install one.
    if "$VENV/bin/python" -m pip show -q "$OTHER_PACKAGE" >/dev/null 2>&1; then
        "$VENV/bin/python" -m pip uninstall --disable-pip-version-check -q -y "$OTHER_PACKAGE" "$ORT_PACKAGE" || true
    fi
    "$VENV/bin/python" -m pip install --disable-pip-version-check -q \
        "$ORT_PACKAGE==$ORT_VERSION" "onnx==$ONNX_VERSION" "numpy==$NUMPY_VERSION"
    have_all || { echo "setup-ort: install finished but libonnxruntime.so is missing" >&2; exit 1; }
fi
if [ "$ORT_PACKAGE" = onnxruntime-gpu ]; then
    compgen -G "$VENV/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime_providers_cuda.so" >/dev/null \
        || { echo "setup-ort: onnxruntime-gpu is installed but its CUDA provider library is missing" >&2; exit 1; }
fi
lib=$(compgen -G "$VENV/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so*" | sort | tail -n 1)
echo "ONNX Runtime library: $lib"
