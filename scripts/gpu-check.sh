#!/usr/bin/env bash
# GPU check of the CT liver/lesion cascade (issue 3): builds voxflow, runs
# graphs/ct_liver_lesion.yaml on one real CT with device cuda and device cpu, compares the two
# label volumes voxel by voxel and reports both wall times. For a machine with an NVIDIA GPU and
# a CUDA build of ONNX Runtime; anywhere else it stops with a clear error.
#
# usage: bash scripts/gpu-check.sh [CT.nii.gz]
#   CT            default: $VOXFLOW_DATA/ircadb01_ct.nii.gz
#   LIVER_MODEL   default: models/ct_liver.onnx     LESION_MODEL  default: models/ct_lesion.onnx
#   ORT_DYLIB_PATH  libonnxruntime.so of a CUDA build (e.g. from the onnxruntime-gpu 1.31.1 wheel,
#                   with its CUDA 12 / cuDNN 9 libraries on LD_LIBRARY_PATH); the PyPI
#                   `onnxruntime` wheel that scripts/setup-ort.sh installs is CPU-only.
#   OUT           folder for outputs and run reports (default: a new folder under /tmp)
set -euo pipefail
cd "$(dirname "$0")/.."

die() { echo "gpu-check: error: $*" >&2; exit 2; }

command -v nvidia-smi >/dev/null 2>&1 || die "no NVIDIA GPU here (nvidia-smi not found); run this on a GPU machine"
nvidia-smi -L >/dev/null 2>&1 || die "nvidia-smi finds no usable GPU: $(nvidia-smi -L 2>&1 | head -1)"
[ -n "${ORT_DYLIB_PATH:-}" ] || die "ORT_DYLIB_PATH is not set; point it at the libonnxruntime.so of a CUDA build of ONNX Runtime (the .venv one is CPU-only)"
[ -f "$ORT_DYLIB_PATH" ] || die "ORT_DYLIB_PATH=$ORT_DYLIB_PATH is not a file"

CT="${1:-${VOXFLOW_DATA:-/nonexistent}/ircadb01_ct.nii.gz}"
[ -f "$CT" ] || die "input CT $CT not found (give a path, or set VOXFLOW_DATA)"
LIVER_MODEL="${LIVER_MODEL:-models/ct_liver.onnx}"
LESION_MODEL="${LESION_MODEL:-models/ct_lesion.onnx}"
for m in "$LIVER_MODEL" "$LESION_MODEL"; do
  [ -f "$m" ] || die "model $m not found (train it, or set LIVER_MODEL / LESION_MODEL)"
done
OUT="${OUT:-$(mktemp -d /tmp/voxflow-gpu-check.XXXXXX)}"
mkdir -p "$OUT"

echo "== build"
cargo build --release --bin voxflow
BIN="${CARGO_TARGET_DIR:-target}/release/voxflow"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader

run() {  # device
  local t0 t1
  t0=$(date +%s.%N)
  "$BIN" -q run graphs/ct_liver_lesion.yaml --report "$OUT/report_$1.json" \
    --set input="$CT" --set output="$OUT/label_$1.nii" \
    --set liver_model="$LIVER_MODEL" --set lesion_model="$LESION_MODEL" --set device="$1"
  t1=$(date +%s.%N)
  echo "$1: $(awk "BEGIN{printf \"%.2f\", $t1 - $t0}") s wall (report: $OUT/report_$1.json)"
}

echo "== run (the first run also loads the CUDA libraries)"
run cuda
run cpu
run cuda

echo "== compare label volumes"
# Same writer, same header: the uncompressed files differ exactly where labels differ (1 byte/voxel).
if cmp -s "$OUT/label_cuda.nii" "$OUT/label_cpu.nii"; then
  echo "labels identical (cuda vs cpu)"
else
  n=$(cmp -l "$OUT/label_cuda.nii" "$OUT/label_cpu.nii" | wc -l)
  total=$(( $(stat -c %s "$OUT/label_cpu.nii") - 352 ))
  echo "labels differ in $n of $total voxels (cuda vs cpu)"
fi
