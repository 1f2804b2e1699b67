#!/usr/bin/env bash
# Side-by-side benchmark: crf3d.py (pydensecrf) vs voxflow-crf (examples/bench_crf.rs),
# same input, same parameters, run back to back; prints wall time and peak RSS of
# both (/usr/bin/time -v) and the label agreement. Writes only under $WORK (/tmp).
#
# usage (from the repository root):
#   .venv-oracles/bin/python /work/shared/oracles/make_synthetic.py /tmp/synth   # once
#   bash nodes/kernels/crf/bench/bench.sh /tmp/synth c200     # 200x200x100 crop
#   bash nodes/kernels/crf/bench/bench.sh /tmp/synth full     # 512x512x100 (slow, ~7.5 GB for the oracle)
# Extra arguments after the case name are passed to both (default: crf3d.py's
# defaults, 5 iterations), e.g. --iters 10 --sigma-pos 1.4.
set -euo pipefail
DATA=${1:?DATADIR}; CASE=${2:-c200}; shift 2 || true
ROOT=$(cd "$(dirname "$0")/../../../.." && pwd)
PY=${PY:-$ROOT/.venv-oracles/bin/python}
WORK=${WORK:-/tmp/crfbench}
mkdir -p "$WORK"
if [ "$CASE" = full ]; then CT=$DATA/ct.nii.gz; PR=$DATA/prob.nii.gz; else CT=$DATA/${CASE}_ct.nii.gz; PR=$DATA/${CASE}_prob.nii.gz; fi
ARGS=(--iters 5 --w-pos 3 --sigma-pos 1 --w-bil 5 --sigma-bil 10 --sigma-int 20 "$@")

( cd "$ROOT" && CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/tmp/target-crf} cargo build -q --release --example bench_crf -p voxflow-crf )
BIN=${CARGO_TARGET_DIR:-/tmp/target-crf}/release/examples/bench_crf
"$PY" "$ROOT/nodes/kernels/crf/bench/to_raw.py" inputs "$CT" "$PR" "$WORK/$CASE"

echo "== machine: $(nproc) cores; load: $(cut -d' ' -f1-3 /proc/loadavg); $(date -u +%FT%TZ)"
echo "== oracle: crf3d.py --backend pydensecrf ${ARGS[*]}"
/usr/bin/time -v "$PY" /work/shared/oracles/crf3d.py "$CT" "$PR" "$WORK/$CASE.oracle.nii.gz" --backend pydensecrf "${ARGS[@]}" \
  2> "$WORK/$CASE.oracle.time" | tee "$WORK/$CASE.oracle.json"
grep -E "Elapsed|Maximum resident|User time" "$WORK/$CASE.oracle.time"
"$PY" "$ROOT/nodes/kernels/crf/bench/to_raw.py" labels "$WORK/$CASE.oracle.nii.gz" "$WORK/$CASE.oracle.u8"

echo "== voxflow-crf: examples/bench_crf ${ARGS[*]} (threads: ${RAYON_NUM_THREADS:-all})"
/usr/bin/time -v "$BIN" "$WORK/$CASE" "${ARGS[@]}" --ref "$WORK/$CASE.oracle.u8" 2> "$WORK/$CASE.rust.time"
grep -E "Elapsed|Maximum resident|User time" "$WORK/$CASE.rust.time"
echo "== load after: $(cut -d' ' -f1-3 /proc/loadavg)"
