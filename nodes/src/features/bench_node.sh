#!/usr/bin/env bash
# Side-by-side benchmark of issue 8: PyRadiomics 3.0.1 (radiomics_oracle.py) vs the
# `survival_features` node (`regions: [lesions]`, through `voxflow run`) on the same region,
# back to back, wall time and peak RSS from /usr/bin/time -v, then a value comparison.
#
# usage (from the repository root):
#   bash nodes/src/features/bench_node.sh [IMAGE LABEL] [REPEAT]
# default: the synthetic CT of make_synthetic.py (/tmp/synth, generated if missing).
# Writes only under $WORK (default /tmp/voxflow-radnode-bench), never the repository.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../../.." && pwd)
PY=${PY:-$ROOT/.venv-oracles/bin/python}
ORACLES=${ORACLES:-/work/shared/oracles}
WORK=${WORK:-/tmp/voxflow-radnode-bench}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/tmp/target-radnode}
IMAGE=${1:-/tmp/synth/ct.nii.gz}
LABEL=${2:-/tmp/synth/gt.nii.gz}
REPEAT=${3:-3}
mkdir -p "$WORK"
if [ ! -f "$IMAGE" ] && [ "$IMAGE" = /tmp/synth/ct.nii.gz ]; then
  "$PY" "$ORACLES/make_synthetic.py" /tmp/synth >/dev/null
fi
(cd "$ROOT" && cargo build -q --release --bin voxflow)
VOXFLOW=$CARGO_TARGET_DIR/release/voxflow
cat >"$WORK/g.yaml" <<YAML
graph: bench-survival-features
nodes:
  ct:    { kind: read_volume, path: $IMAGE }
  lab:   { kind: read_volume, path: $LABEL, as: label }
  feats: { kind: survival_features, image: ct, label: lab, regions: [lesions], json: $WORK/node.json }
YAML
field() { grep -E "$1" "$2" | sed -E 's/.*: //'; }
echo "input: $IMAGE + $LABEL (label 2); $(nproc) cores; load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-34s %14s %26s %14s\n' "" "process wall" "extraction / node (s)" "peak RSS (MB)"
for r in $(seq "$REPEAT"); do
  /usr/bin/time -v "$PY" "$ORACLES/radiomics_oracle.py" "$IMAGE" "$LABEL" --label 2 \
    >"$WORK/oracle.json" 2>"$WORK/oracle.time"
  /usr/bin/time -v "$VOXFLOW" -q run "$WORK/g.yaml" --report "$WORK/report.json" \
    >/dev/null 2>"$WORK/node.time"
  o_in=$("$PY" -c "import json,sys; print(json.load(open(sys.argv[1]))['seconds'])" "$WORK/oracle.json")
  n_in=$("$PY" -c "
import json,sys
n = [x for x in json.load(open(sys.argv[1]))['nodes'] if x['id'] == 'feats'][0]
print(round(n['busy_ms'] / 1000, 3))" "$WORK/report.json")
  printf '%-34s %14s %26s %14s\n' "run $r PyRadiomics 3.0.1 (oracle)" "$(field 'Elapsed \(wall' "$WORK/oracle.time")" \
    "$o_in (incl. its read)" "$(( $(field 'Maximum resident' "$WORK/oracle.time") / 1024 ))"
  printf '%-34s %14s %26s %14s\n' "run $r voxflow survival_features" "$(field 'Elapsed \(wall' "$WORK/node.time")" \
    "$n_in (node busy, report)" "$(( $(field 'Maximum resident' "$WORK/node.time") / 1024 ))"
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
"$PY" -c "
import json,sys
rows = json.load(open(sys.argv[1]))['regions']
r = [x for x in rows if x['region'] == 'lesions'][0]
order = json.load(open(sys.argv[3]))['features']  # JSON objects are key-sorted; use PyRadiomics order
json.dump({'features': {k: r[k] for k in order if k in r}}, open(sys.argv[2], 'w'))" \
  "$WORK/node.json" "$WORK/node_features.json" "$WORK/oracle.json"
"$PY" "$ROOT/nodes/kernels/radiomics/scripts/compare.py" "$WORK/oracle.json" "$WORK/node_features.json"
