#!/usr/bin/env bash
# On the GPU machine: joins the parts that scripts/gpu-pack.sh made, checks their checksum,
# unpacks the CUDA build of ONNX Runtime and runs scripts/gpu-check.sh with it. The CUDA 13 and
# cuDNN 9 libraries come from the machine's PyTorch (cu130) wheels (nvidia/*/lib folders).
#
# usage: bash scripts/gpu-unpack-check.sh DIR [CT.nii.gz]   (DIR holds ort-gpu.tar.xz.part-* and
#        ort-gpu.sha256; PYTHON: the interpreter whose site-packages hold torch and nvidia/*)
set -euo pipefail
cd "$(dirname "$0")/.."
die() { echo "gpu-unpack-check: error: $*" >&2; exit 2; }

DIR="${1:?usage: gpu-unpack-check.sh DIR [CT.nii.gz]}"
shift
compgen -G "$DIR/ort-gpu.tar.xz.part-*" >/dev/null || die "no ort-gpu.tar.xz.part-* in $DIR"
[ -f "$DIR/ort-gpu.sha256" ] || die "no ort-gpu.sha256 in $DIR"
dest=$(mktemp -d /tmp/ort-gpu.XXXXXX)
cat "$DIR"/ort-gpu.tar.xz.part-* > "$dest/ort-gpu.tar.xz"
sums=$(realpath "$DIR/ort-gpu.sha256")
(cd "$dest" && sha256sum -c --quiet "$sums") \
  || die "checksum mismatch: a part is missing or damaged"
xz -dc "$dest/ort-gpu.tar.xz" | tar -C "$dest" -xf -
rm "$dest/ort-gpu.tar.xz"
lib=$(compgen -G "$dest/libonnxruntime.so.*" | head -1)

PY="${PYTHON:-python3}"
nv=$("$PY" - <<'PY' 2>/dev/null || true
import glob, os, site
dirs = []
for sp in site.getsitepackages():
    dirs += sorted(glob.glob(os.path.join(sp, "nvidia", "*", "lib")))
    dirs += sorted(glob.glob(os.path.join(sp, "nvidia", "cu13", "lib")))
print(":".join(dict.fromkeys(dirs)))
PY
)
[ -n "$nv" ] || echo "gpu-unpack-check: no nvidia/*/lib folders under $PY's site-packages; relying on LD_LIBRARY_PATH" >&2
export LD_LIBRARY_PATH="$dest${nv:+:$nv}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
ORT_DYLIB_PATH="$lib" bash scripts/gpu-check.sh "$@"
