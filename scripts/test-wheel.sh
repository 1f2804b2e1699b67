#!/usr/bin/env bash
# The pip route (README, "Without Rust: pip"), as `make test` runs it: builds the wheel
# (scripts/build-wheel.sh), installs it into a fresh virtualenv in a temporary folder (onnxruntime
# from PyPI through pip's cache), and runs the installed `voxflow segment` from another folder on
# the phantom (written to NIfTI first) with the installed CT graph and models, ONNX Runtime from
# that environment alone. Fails unless the installed files match the repository's, ONNX Runtime
# was loaded from the new environment, segment wrote its files, and the segmentation has liver
# and lesion voxels. Not for a cargo test: cargo
# holds its build-directory lock while tests run, so a test cannot build the wheel in target/.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3}"

bash "$ROOT/scripts/build-wheel.sh"
wheel=$(compgen -G "$ROOT/target/wheels/voxflow-*.whl")

tmp=$(mktemp -d "${TMPDIR:-/tmp}/voxflow-wheel.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
"$PYTHON" -m venv "$tmp/venv"
venv=$(cd "$tmp/venv" && pwd -P)
"$venv/bin/python" -m pip install --disable-pip-version-check -q "$wheel"

# The layout `voxflow segment` finds its graphs and models by: <prefix>/bin/voxflow,
# <prefix>/share/voxflow/{graphs,models}.
home="$venv/share/voxflow"
for f in graphs/ct_liver_lesion.yaml graphs/mri_liver.yaml models/ct_liver.onnx \
         models/ct_lesion.onnx models/mr_liver.onnx models/README.md; do
    cmp "$ROOT/$f" "$home/$f" || { echo "test-wheel: $home/$f is not the repository's $f" >&2; exit 1; }
done

mkdir "$tmp/elsewhere"
(
    cd "$tmp/elsewhere"
    # The phantom as a NIfTI file, then the one-command route on it.
    printf 'graph: phantom\nnodes:\n  ct: { kind: read_volume, path: "phantom:small" }\n  save: { kind: write_volume, in: ct, path: ct.nii.gz }\n' > phantom.yaml
    "$venv/bin/voxflow" -q run phantom.yaml
    env -u ORT_DYLIB_PATH VOXFLOW_LOG=voxflow_onnx=debug NO_COLOR=1 \
        "$venv/bin/voxflow" segment ct.nii.gz --modality ct -o seg > "$tmp/segment.out" 2> "$tmp/run.log" \
        || { cat "$tmp/run.log" >&2; echo "test-wheel: the installed voxflow segment failed" >&2; exit 1; }
)
sed "s/\x1b\[[0-9;]*m//g" "$tmp/run.log" | grep -F "loaded ONNX Runtime path=$venv/lib/python3" >/dev/null \
    || { cat "$tmp/run.log" >&2; echo "test-wheel: ONNX Runtime was not loaded from $venv" >&2; exit 1; }
for f in seg.nii.gz liver.nii.gz liver_lesions.nii.gz seg.html seg.stats.json; do
    [ -f "$tmp/elsewhere/seg/$f" ] || { cat "$tmp/segment.out" >&2; echo "test-wheel: segment wrote no $f" >&2; exit 1; }
done

# Labels read with numpy (installed with onnxruntime), not with voxflow's own reader.
"$venv/bin/python" - "$tmp/elsewhere/seg/seg.nii.gz" <<'PY'
import gzip, struct, sys
import numpy as np

path = sys.argv[1]
with gzip.open(path, "rb") as f:
    raw = f.read()
if struct.unpack_from("<i", raw, 0)[0] != 348:
    sys.exit(f"test-wheel: {path} is not a little-endian NIfTI-1 file")
dim = struct.unpack_from("<8h", raw, 40)
datatype = struct.unpack_from("<h", raw, 70)[0]
offset = int(struct.unpack_from("<f", raw, 108)[0])
slope, inter = struct.unpack_from("<2f", raw, 112)
dtypes = {2: "u1", 4: "<i2", 8: "<i4", 16: "<f4", 64: "<f8", 256: "i1", 512: "<u2", 768: "<u4"}
if datatype not in dtypes:
    sys.exit(f"test-wheel: {path} has NIfTI datatype {datatype}")
shape = dim[1 : 1 + dim[0]]
n = int(np.prod(shape))
labels = np.frombuffer(raw, dtypes[datatype], count=n, offset=offset).astype(np.float64)
if slope not in (0.0, 1.0) or inter != 0.0:
    labels = labels * slope + inter
liver, lesion = int((labels == 1).sum()), int((labels == 2).sum())
print(f"test-wheel: installed voxflow on phantom:small {tuple(shape)}: {liver} liver, {lesion} lesion voxels")
if tuple(shape) != (128, 128, 40):
    sys.exit(f"test-wheel: {path} has shape {tuple(shape)}, the phantom is 128x128x40")
if liver < 10000 or lesion == 0:
    sys.exit("test-wheel: expected a liver (>= 10000 voxels) and lesions")
PY
echo "test-wheel: passed ($(basename "$wheel"), $(du -h "$wheel" | cut -f1))"
