#!/usr/bin/env bash
# Installs the training environment (PyTorch, numpy, nibabel, onnx, onnxruntime, PyYAML) into the
# project-local virtualenv `.venv-train` at the repo root. Idempotent: exits fast when present.
# pydicom and highdicom are for tests/check_seg.py (reads back the DICOM SEG output).
# PyPI serves only the CUDA build of torch for Linux x86_64 (~3 GB download); it runs on CPU too.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv-train"
PYTHON="${PYTHON:-python3}"
PKGS=(torch==2.15.0 numpy==2.3.5 nibabel==5.4.2 onnx==1.23.2 onnxruntime==1.31.1 pyyaml==6.0.4 scipy==1.17.1
      pydicom==3.0.2 highdicom==0.28.2)

have_all() {
    [ -x "$VENV/bin/python" ] || return 1
    "$VENV/bin/python" - "${PKGS[@]}" <<'PY' >/dev/null 2>&1
import sys
from importlib.metadata import version
sys.exit(0 if all(version(n) == v for n, v in (p.split("==") for p in sys.argv[1:])) else 1)
PY
}

if have_all; then
    echo "training environment already installed in $VENV"
    exit 0
fi
start=$(date +%s)
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install --disable-pip-version-check -q "${PKGS[@]}"
have_all || { echo "setup-training: install finished but a package version is wrong" >&2; exit 1; }
echo "training environment installed in $VENV in $(( $(date +%s) - start )) s"
