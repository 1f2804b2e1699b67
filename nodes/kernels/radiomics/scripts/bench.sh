#!/usr/bin/env bash
# Side-by-side benchmark: PyRadiomics 3.0.1 (radiomics_oracle.py) vs voxflow-radiomics
# (examples/bench_radiomics.rs) on the same region, back to back, with wall time and peak RSS
# from /usr/bin/time -v, then a value comparison (scripts/compare.py).
#
# usage (from the repository root):
#   bash nodes/kernels/radiomics/scripts/bench.sh [IMAGE LABEL [LABEL_VALUE]]
# default: the synthetic CT's lesions (make_synthetic.py output in /tmp/synth, label 2).
# Everything it writes goes to $WORK (default /tmp/voxflow-radiomics-bench), never the repo.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../../../.." && pwd)
PY=${PY:-$ROOT/.venv-oracles/bin/python}
ORACLES=${ORACLES:-/work/shared/oracles}
WORK=${WORK:-/tmp/voxflow-radiomics-bench}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/tmp/target-radiomics}
IMAGE=${1:-/tmp/synth/ct.nii.gz}
LABEL=${2:-/tmp/synth/gt.nii.gz}
VALUE=${3:-2}
mkdir -p "$WORK"
if [ ! -f "$IMAGE" ] && [ "$IMAGE" = /tmp/synth/ct.nii.gz ]; then
  "$PY" "$ORACLES/make_synthetic.py" /tmp/synth >/dev/null
fi
(cd "$ROOT" && cargo build -q --release --example bench_radiomics -p voxflow-radiomics)
BENCH=$CARGO_TARGET_DIR/release/examples/bench_radiomics
"$PY" "$(dirname "$0")/nifti_to_raw.py" "$IMAGE" "$LABEL" "$WORK/raw" --label-value "$VALUE" >/dev/null

field() { grep -E "$1" "$2" | sed -E 's/.*: //'; }

/usr/bin/time -v "$PY" "$ORACLES/radiomics_oracle.py" "$IMAGE" "$LABEL" --label "$VALUE" \
  >"$WORK/oracle.json" 2>"$WORK/oracle.time"
/usr/bin/time -v "$BENCH" "$WORK/raw" --repeat 5 --json "$WORK/rust.json" \
  >"$WORK/rust.out" 2>"$WORK/rust.time"

o_wall=$(field "Elapsed \(wall" "$WORK/oracle.time"); o_rss=$(field "Maximum resident" "$WORK/oracle.time")
r_wall=$(field "Elapsed \(wall" "$WORK/rust.time"); r_rss=$(field "Maximum resident" "$WORK/rust.time")
o_in=$("$PY" -c "import json,sys; print(json.load(open(sys.argv[1]))['seconds'])" "$WORK/oracle.json")
r_in=$("$PY" -c "import json,sys; print(round(json.load(open(sys.argv[1]))['seconds'], 4))" "$WORK/rust.json")
echo "input: $IMAGE label $VALUE; $(nproc) cores; load average: $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-28s %14s %22s %14s\n' "" "process wall" "extraction (s)" "peak RSS (MB)"
printf '%-28s %14s %22s %14s\n' "PyRadiomics 3.0.1 (oracle)" "$o_wall" "$o_in (incl. read)" "$((o_rss / 1024))"
printf '%-28s %14s %22s %14s\n' "voxflow-radiomics (x5 runs)" "$r_wall" "$r_in (best of 5)" "$((r_rss / 1024))"
cat "$WORK/rust.out"
"$PY" "$(dirname "$0")/compare.py" "$WORK/oracle.json" "$WORK/rust.json"
