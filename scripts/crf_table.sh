#!/usr/bin/env bash
# Dense CRF with and without, per IRCADb patient, cross-validated (issue 5): for each held-out
# patient P (01, 17) with the other patient Q,
#   1. run the CT cascade (graphs/ct_liver_lesion.yaml) on Q with P's cross-validation models
#      (models/cv/ct_{liver,lesion}_not_ircadbP.onnx) and keep its probabilities;
#   2. tune the CRF on them: voxflow crf-search (seeded random search, mean Dice of liver and
#      lesion) -> params tuned without P;
#   3. run the cascade on P with the same models, with those params and without the CRF;
#   4. evaluate both with voxflow eval --predictions, print a Markdown table.
# Then tune on both patients with the shipped models (models/ct_{liver,lesion}.onnx) and print
# the params for graphs/ct_liver_lesion.yaml's dense_crf node.
#
# A missing liver CV model falls back to models/ct_liver.onnx (trained on both patients, so the
# liver numbers are then not held-out); the table says so.
#
# usage (repo root, after `cargo build --release`):
#   VOXFLOW_DATA=/path/to/scans scripts/crf_table.sh
# env: VOXFLOW (binary; default target/release/voxflow), TRIALS (random trials after the defaults;
#      30), SEED (1), ITERATIONS (10), THREADS (2), OUT (out/crf_table; everything is written there,
#      derived from the scans: never commit it).
# Deterministic: same binary, models, data, env -> same table.
set -euo pipefail
DATA=$(realpath "${VOXFLOW_DATA:?set VOXFLOW_DATA to the folder with ircadb01_ct.nii.gz etc.}")
[ -z "${VOXFLOW:-}" ] || VOXFLOW=$(realpath "$VOXFLOW")
cd "$(dirname "$0")/.."
VOXFLOW=${VOXFLOW:-target/release/voxflow}
TRIALS=${TRIALS:-30}
SEED=${SEED:-1}
ITERATIONS=${ITERATIONS:-10}
THREADS=${THREADS:-2}
OUT=${OUT:-out/crf_table}
GRAPH=graphs/ct_liver_lesion.yaml
PATIENTS=(01 17)

[ -x "$VOXFLOW" ] || { echo "no voxflow binary at $VOXFLOW (cargo build --release)" >&2; exit 1; }
for p in "${PATIENTS[@]}"; do
  for f in ct label; do
    [ -f "$DATA/ircadb${p}_$f.nii.gz" ] || { echo "missing $DATA/ircadb${p}_$f.nii.gz" >&2; exit 1; }
  done
done
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
log() { echo "[crf_table $(date -u +%H:%M:%S)] $*" >&2; }

# The shipped graph with its dense_crf node's params replaced by $2 (a YAML flow-map body, e.g.
# `w_pos: 3, sigma_pos_mm: 1.4` or `enabled: false`), plus nodes writing the CRF's input
# probabilities ($3) and their argmax, the no-CRF labels ($4). Written to $1.
derive_graph() {
  local out=$1 spec=$2 prob=$3 nocrf=$4
  local line image src
  line=$(grep -E '^  [A-Za-z0-9_]+: *\{ *kind: *dense_crf[,} ]' "$GRAPH") ||
    { echo "$GRAPH: no dense_crf node" >&2; exit 1; }
  [ "$(printf '%s\n' "$line" | wc -l)" = 1 ] || { echo "$GRAPH: several dense_crf nodes" >&2; exit 1; }
  image=$(printf '%s' "$line" | sed -nE 's/.*[{,] *image: *([A-Za-z0-9_.]+).*/\1/p')
  src=$(printf '%s' "$line" | sed -nE 's/.*[{,] *prob: *([A-Za-z0-9_.]+).*/\1/p')
  [ -n "$image" ] && [ -n "$src" ] || { echo "$GRAPH: cannot read the dense_crf inputs" >&2; exit 1; }
  local id=${line%%:*}
  awk -v line="$line" -v repl="$id: { kind: dense_crf, image: $image, prob: $src, $spec }" \
    '$0 == line { print repl; next } { print }' "$GRAPH" > "$out"
  tail -c1 "$out" | read -r _ || echo >> "$out"
  cat >> "$out" <<EOF
  crf_table_prob:   { kind: write_volume, in: $src, path: "$prob" }
  crf_table_argmax: { kind: argmax, in: $src }
  crf_table_nocrf:  { kind: write_volume, in: crf_table_argmax, path: "$nocrf" }
EOF
  "$VOXFLOW" check -q "$out" >/dev/null
}

# run_case PATIENT LIVER_MODEL LESION_MODEL CRF_SPEC DIR: cascade on one patient; writes
# DIR/prob.nii.gz, DIR/nocrf.nii.gz and (unless the CRF is disabled) DIR/crf.nii.gz.
run_case() {
  local p=$1 liver=$2 lesion=$3 spec=$4 dir=$5
  mkdir -p "$dir"
  derive_graph "$dir/graph.yaml" "$spec" "$dir/prob.nii.gz" "$dir/nocrf.nii.gz"
  "$VOXFLOW" run -q --threads "$THREADS" "$dir/graph.yaml" \
    --set input="$DATA/ircadb${p}_ct.nii.gz" --set liver_model="$PWD/$liver" \
    --set lesion_model="$PWD/$lesion" --set output="$dir/crf.nii.gz" --set report=false \
    --report "$dir/run.json"
}

# tune NAME CASES...: crf-search on the probabilities of CASES (each DIR:PATIENT); prints the
# tuned params as a flow-map body.
tune() {
  local name=$1; shift
  local m=$OUT/$name.cases.csv
  echo "id,image,prob,truth" > "$m"
  for c in "$@"; do
    echo "ircadb${c#*:},$DATA/ircadb${c#*:}_ct.nii.gz,${c%:*}/prob.nii.gz,$DATA/ircadb${c#*:}_label.nii.gz" >> "$m"
  done
  "$VOXFLOW" crf-search --manifest "$m" --out "$OUT/$name.yaml" --trials "$TRIALS" \
    --seed "$SEED" --iterations "$ITERATIONS" --trials-csv "$OUT/$name.trials.csv" \
    --threads "$THREADS" > /dev/null 2> "$OUT/$name.log"
  grep -vE '^\s*(#|$)' "$OUT/$name.yaml" | paste -sd, - | sed 's/,/, /g'
}

# dice FILE.nii.gz PATIENT DIR: liver and lesion Dice (voxflow eval --predictions)
dice() {
  local pred=$1 p=$2 dir=$3
  mkdir -p "$dir"
  printf 'id,pred,truth\nircadb%s,%s,%s\n' "$p" "$pred" "$DATA/ircadb${p}_label.nii.gz" > "$dir/cases.csv"
  "$VOXFLOW" eval -q --predictions --manifest "$dir/cases.csv" --out "$dir" > /dev/null
  awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
    { d[$col["class"]] = $col["dice"] } END { printf "%.4f %.4f", d["liver"], d["lesion"] }' "$dir/metrics.csv"
}

rows=()
notes=()
for p in "${PATIENTS[@]}"; do
  for q in "${PATIENTS[@]}"; do [ "$q" != "$p" ] && other=$q; done
  lesion=models/cv/ct_lesion_not_ircadb$p.onnx
  [ -f "$lesion" ] || { echo "missing $lesion" >&2; exit 1; }
  liver=models/cv/ct_liver_not_ircadb$p.onnx
  held="held-out"
  if [ ! -f "$liver" ]; then
    notes+=("patient $p: $liver does not exist; used models/ct_liver.onnx, which was trained on patient $p (liver not held-out)")
    liver=models/ct_liver.onnx
    held="**not held-out**"
  fi
  log "fold $p: cascade on patient $other (tuning input), models $liver, $lesion"
  run_case "$other" "$liver" "$lesion" "enabled: false" "$OUT/fold$p/tune_on_$other"
  log "fold $p: crf-search on patient $other ($TRIALS trials + defaults)"
  spec=$(tune "params_not_ircadb$p" "$OUT/fold$p/tune_on_$other:$other")
  log "fold $p: cascade on patient $p with { $spec }"
  run_case "$p" "$liver" "$lesion" "$spec" "$OUT/fold$p/test_$p"
  read -r l0 s0 <<< "$(dice "$OUT/fold$p/test_$p/nocrf.nii.gz" "$p" "$OUT/fold$p/eval_nocrf")"
  read -r l1 s1 <<< "$(dice "$OUT/fold$p/test_$p/crf.nii.gz" "$p" "$OUT/fold$p/eval_crf")"
  rows+=("| ircadb$p | \`$liver\` ($held) | \`$lesion\` | ircadb$other: $spec | $l0 | $l1 | $s0 | $s1 |")
done

log "shipped models: cascade on both patients, crf-search on both"
cases=()
for p in "${PATIENTS[@]}"; do
  run_case "$p" models/ct_liver.onnx models/ct_lesion.onnx "enabled: false" "$OUT/shipped/ircadb$p"
  cases+=("$OUT/shipped/ircadb$p:$p")
done
both=$(tune params_both "${cases[@]}")

echo "CRF cross-validation table ($(date -u '+%F %H:%M UTC'); data $DATA; crf-search: $TRIALS random trials + the defaults, seed $SEED, $ITERATIONS iterations, objective mean Dice; $THREADS threads)"
echo
echo "| held-out patient | liver model | lesion model | CRF params tuned on | liver Dice, no CRF | liver Dice, CRF | lesion Dice, no CRF | lesion Dice, CRF |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- |"
printf '%s\n' "${rows[@]}"
echo
for n in "${notes[@]}"; do echo "- $n"; done
echo "- params tuned on both patients with the shipped models (for the graph's dense_crf node): { $both }"
echo "- search logs: $OUT/params_*.{log,yaml,trials.csv}; per-case outputs and eval folders under $OUT"
