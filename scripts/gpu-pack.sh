#!/usr/bin/env bash
# Packs the CUDA build of ONNX Runtime for a GPU machine without network (issue 19): downloads the
# onnxruntime-gpu wheel from PyPI, takes its three libraries (libonnxruntime.so.*,
# libonnxruntime_providers_shared.so, libonnxruntime_providers_cuda.so), compresses them
# (xz -9e) and splits the archive into parts of at most PART_MIB MiB, so that each part fits one
# transfer. On the GPU machine, `bash scripts/gpu-unpack-check.sh DIR` joins the parts, checks
# their checksum and runs scripts/gpu-check.sh with them.
#
# usage: bash scripts/gpu-pack.sh [OUT_DIR]     (default out/ort-gpu; PART_MIB default 28)
set -euo pipefail
cd "$(dirname "$0")/.."

ORT_VERSION="1.31.1"
OUT="${1:-out/ort-gpu}"
PART_MIB="${PART_MIB:-28}"
PY="${PYTHON:-.venv/bin/python}"
[ -x "$PY" ] || PY=python3
mkdir -p "$OUT"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

"$PY" -m pip download --disable-pip-version-check -q --no-deps --only-binary=:all: \
  --platform manylinux_2_28_x86_64 --python-version 3.11 \
  "onnxruntime-gpu==$ORT_VERSION" -d "$work"
wheel=$(compgen -G "$work/onnxruntime_gpu-$ORT_VERSION-*.whl" | head -1)
[ -n "$wheel" ] || { echo "gpu-pack: the onnxruntime-gpu $ORT_VERSION wheel was not downloaded" >&2; exit 1; }
mkdir -p "$work/lib"
"$PY" - "$wheel" "$work/lib" <<'PY'
import os, sys, zipfile
wheel, dest = sys.argv[1:]
want = ("libonnxruntime.so.", "libonnxruntime_providers_shared.so", "libonnxruntime_providers_cuda.so")
with zipfile.ZipFile(wheel) as z:
    names = [n for n in z.namelist() if n.startswith("onnxruntime/capi/") and os.path.basename(n).startswith(want)]
    if len(names) != 3:
        sys.exit(f"gpu-pack: expected 3 libraries in the wheel, found {names}")
    for n in names:
        with z.open(n) as src, open(os.path.join(dest, os.path.basename(n)), "wb") as out:
            out.write(src.read())
        print(f"  {os.path.basename(n)}")
PY
rm -f "$OUT"/ort-gpu.tar.xz.part-* "$OUT"/ort-gpu.sha256
tar -C "$work/lib" -cf - . | xz -9e -T1 > "$work/ort-gpu.tar.xz"
(cd "$work" && sha256sum ort-gpu.tar.xz) > "$OUT/ort-gpu.sha256"
split -b "${PART_MIB}M" -d -a 2 "$work/ort-gpu.tar.xz" "$OUT/ort-gpu.tar.xz.part-"
ls -l "$OUT"
echo "gpu-pack: $(ls "$OUT"/ort-gpu.tar.xz.part-* | wc -l) parts of at most $PART_MIB MiB in $OUT"
