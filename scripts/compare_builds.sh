#!/bin/bash
# Side by side on one machine: the CT graph on ircadb01 (report=false) with each given commit's own
# binary, graph and shipped models, the builds alternating, ROUNDS rounds (default 2). Prints wall
# time, peak RSS and per-node busy time from the run reports (docs/PERFORMANCE.md).
#   VOXFLOW_DATA=... scripts/compare_builds.sh e835adc b62452f HEAD
# HEAD is this checkout as built in target/release (make build); other commits are checked out
# under $WORK (default /tmp/voxflow-compare) and built there once.
set -euo pipefail
: "${VOXFLOW_DATA:?set VOXFLOW_DATA to the folder with ircadb01_ct.nii.gz}"
ROUNDS=${ROUNDS:-2}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=${WORK:-/tmp/voxflow-compare}
ORT=$(ls "$ROOT"/.venv/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so.* | head -1)
mkdir -p "$WORK/out"
checkout() { if [ "$1" = HEAD ]; then echo "$ROOT"; else echo "$WORK/src-$1"; fi; }
binary() { if [ "$1" = HEAD ]; then echo "$ROOT/target/release/voxflow"; else echo "$WORK/target-$1/release/voxflow"; fi; }
for rev in "$@"; do
  [ "$rev" = HEAD ] && continue
  dir=$(checkout "$rev")
  [ -d "$dir" ] || git -C "$ROOT" worktree add --detach "$dir" "$rev" > /dev/null
  # Builds of the report node embed the NiiVue bundle from .niivue (make setup).
  [ -e "$dir/.niivue" ] || ln -s "$ROOT/.niivue" "$dir/.niivue"
  (cd "$dir" && CARGO_TARGET_DIR="$WORK/target-$rev" cargo build --release -q -p voxflow)
done
for round in $(seq "$ROUNDS"); do
  for rev in "$@"; do
    (cd "$(checkout "$rev")" && ORT_DYLIB_PATH="$ORT" "$(binary "$rev")" -q run graphs/ct_liver_lesion.yaml \
      --set input="$VOXFLOW_DATA/ircadb01_ct.nii.gz" --set output="$WORK/out/seg_$rev.nii.gz" \
      --set report=false --report "$WORK/out/run_${rev}_$round.json")
  done
done
python3 - "$WORK/out" "$ROUNDS" "$@" <<'PY'
import json, sys
out, rounds, revs = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
runs = {(r, k): json.load(open(f"{out}/run_{r}_{k}.json")) for r in revs for k in range(1, rounds + 1)}
def cells(f):
    return ["/".join(f(runs[(r, k)]) for k in range(1, rounds + 1)) for r in revs]
print("| ircadb01, report=false | " + " | ".join(revs) + " |")
print("|---" * (len(revs) + 1) + "|")
print("| wall (s) | " + " | ".join(cells(lambda j: "%.2f" % (j["wall_ms"] / 1000))) + " |")
print("| peak RSS (GiB) | " + " | ".join(cells(lambda j: "%.3f" % (j["peak_rss_bytes"] / 2**30))) + " |")
ids = []
for j in runs.values():
    ids += [n["id"] for n in j["nodes"] if n["id"] not in ids]
for i in ids:
    def busy(j):
        n = [n for n in j["nodes"] if n["id"] == i]
        return "%.2f" % (n[0]["busy_ms"] / 1000) if n else "-"
    print(f"| `{i}` busy (s) | " + " | ".join(cells(busy)) + " |")
PY
