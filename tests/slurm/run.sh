#!/usr/bin/env bash
# `voxflow batch --slurm` against a real Slurm: installs Debian's Slurm and munge, starts a
# one-node cluster on loopback (state under a temp folder), runs an array batch over real
# cases, cancels it mid-way, resubmits it, checks every case is done exactly once, collects,
# and stops the daemons by their PID files (always, also on failure).
#
# Needs root (apt-get, slurmd) and apt-get unless Slurm and munge are installed.
# Env: VOXFLOW (the binary), VOXFLOW_DATA (the real scans).
set -euo pipefail

need() {
  echo "tests/slurm/run.sh: $*" >&2
  exit 2
}
[ "$(id -u)" = 0 ] || need "needs root: it installs slurmctld, slurmd, slurm-client and munge with apt-get and runs slurmd; run it as root (CI does)"
voxflow=${VOXFLOW:?set VOXFLOW to the voxflow binary}
data=${VOXFLOW_DATA:?set VOXFLOW_DATA to the real-scan folder}
repo=$(cd "$(dirname "$0")/../.." && pwd)

if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null ||
  ! command -v sbatch >/dev/null || ! command -v munged >/dev/null; then
  command -v apt-get >/dev/null ||
    need "needs apt-get to install slurmctld slurmd slurm-client munge (Debian/Ubuntu), or those four installed"
  pkgs="slurmctld slurmd slurm-client munge"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y --no-install-recommends $pkgs >/dev/null ||
    { apt-get update >/dev/null && apt-get install -y --no-install-recommends $pkgs >/dev/null; } ||
    need "apt-get install $pkgs failed"
fi

T=$(mktemp -d /tmp/voxflow-slurm.XXXXXX)
chmod 755 "$T"
stop() {
  rc=$?
  set +e
  [ -f "$T/slurmctld.pid" ] && scancel --quiet --user=root 2>/dev/null
  for d in slurmd slurmctld munged; do
    [ -f "$T/$d.pid" ] || continue
    pid=$(cat "$T/$d.pid")
    kill "$pid" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -9 "$pid" 2>/dev/null
  done
  if [ "$rc" != 0 ]; then
    echo "--- failed (exit $rc); daemon logs and job logs:" >&2
    tail -n 20 "$T"/*.log "$T"/out/slurm/*.log >&2 2>/dev/null
  fi
  rm -rf "$T"
  exit "$rc"
}
trap stop EXIT

# munge with its own key and socket, so a munged already on the machine is left alone.
dd if=/dev/urandom of="$T/munge.key" bs=1024 count=1 2>/dev/null
chmod 600 "$T/munge.key"
munged --force --key-file="$T/munge.key" --socket="$T/munge.sock" --pid-file="$T/munged.pid" \
  --log-file="$T/munged.log" --seed-file="$T/munge.seed"

port=$((20000 + $$ % 20000))
mkdir -p "$T/state" "$T/spool"
cat >"$T/slurm.conf" <<EOF
ClusterName=voxflowtest
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
SlurmctldPort=$port
SlurmdPort=$((port + 1))
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$T/munge.sock
StateSaveLocation=$T/state
SlurmdSpoolDir=$T/spool
SlurmctldPidFile=$T/slurmctld.pid
SlurmdPidFile=$T/slurmd.pid
SlurmctldLogFile=$T/slurmctld.log
SlurmdLogFile=$T/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
MpiDefault=none
SwitchType=switch/none
NodeName=localhost NodeAddr=127.0.0.1 CPUs=2 State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF
export SLURM_CONF="$T/slurm.conf"
slurmctld -c -f "$SLURM_CONF"
slurmd -N localhost -f "$SLURM_CONF"
for i in $(seq 60); do
  sinfo -h -o %T 2>/dev/null | grep -qx idle && break
  [ "$i" = 60 ] && { echo "the node never became idle: $(sinfo 2>&1)" >&2; exit 1; }
  sleep 1
done
echo "slurm: node idle"

# Six cases, three array tasks of two: two real scans with truth, four phantoms.
cat >"$T/cases.csv" <<EOF
id,input,truth
ircadb01,$data/ircadb01_small_ct.nii.gz,$data/ircadb01_small_label.nii.gz
ircadb17,$data/ircadb17_small_ct.nii.gz,$data/ircadb17_small_label.nii.gz
p2,phantom:small,
p3,phantom:small,
p4,phantom:small,
p5,phantom:small,
EOF
ids="ircadb01 ircadb17 p2 p3 p4 p5"
out="$T/out"
submit() {
  "$voxflow" batch "$repo/graphs/ct_liver_lesion.yaml" --manifest "$T/cases.csv" --out "$out" \
    --slurm 3 --submit --sbatch=--time=30:00 | tail -n 1
}
wait_job() {
  for _ in $(seq 600); do
    [ -z "$(squeue -h -j "$1" 2>/dev/null)" ] && return 0
    sleep 1
  done
  echo "job $1 did not end in 10 minutes" >&2
  return 1
}
done_count() {
  n=0
  for id in $ids; do
    grep -qs '"state": "done"' "$out/$id/status.json" && n=$((n + 1))
  done
  echo $n
}

job1=$(submit)
grep -q -- '--array=0-2' "$out/slurm/batch.sh"
echo "slurm: submitted job $job1"
for _ in $(seq 600); do
  [ "$(done_count)" -ge 1 ] && break
  sleep 0.5
done
scancel "$job1"
wait_job "$job1"
after_cancel=$(done_count)
echo "slurm: cancelled job $job1 with $after_cancel of 6 cases done"
[ "$after_cancel" -ge 1 ] && [ "$after_cancel" -lt 6 ] ||
  { echo "expected the cancel to land mid-way, $after_cancel cases done" >&2; exit 1; }
for i in $(seq 50); do
  pgrep -f -- "--report $out/" >/dev/null || break
  [ "$i" = 50 ] && { echo "case processes outlived the cancelled job" >&2; exit 1; }
  sleep 0.2
done
first=""
for id in $ids; do
  [ -f "$out/$id/status.json" ] && first="$first $id:$(date -r "$out/$id/status.json" +%s.%N)"
done

job2=$(submit)
echo "slurm: resubmitted as job $job2"
wait_job "$job2"
[ "$(done_count)" = 6 ] || { echo "after resubmitting: $(done_count) of 6 cases done" >&2; exit 1; }
# Cases finished by the first job were not run again ...
for entry in $first; do
  id=${entry%%:*}
  [ "$id:$(date -r "$out/$id/status.json" +%s.%N)" = "$entry" ] ||
    { echo "case $id ran again after the resubmission" >&2; exit 1; }
  grep -q "\"slurm_job\": \"${job1}_" "$out/$id/status.json"
done
# ... the others ran in the second job, and no case finished twice.
for id in $ids; do
  case " $first " in *" $id:"*) continue ;; esac
  grep -q "\"slurm_job\": \"${job2}_" "$out/$id/status.json" ||
    { echo "case $id: $(grep slurm_job "$out/$id/status.json")" >&2; exit 1; }
done
for id in $ids; do
  n=$(cat "$out"/slurm/*.log | grep -c "^case $id done in" || true)
  [ "$n" -le 1 ] || { echo "case $id finished $n times" >&2; exit 1; }
done
# Task I ran shard I/3.
for i in 0 1 2 3 4 5; do
  id=$(echo $ids | cut -d' ' -f$((i + 1)))
  grep -q "\"shard\": \"$((i % 3))/3\"" "$out/$id/status.json" || { echo "case $id: wrong shard" >&2; exit 1; }
done
if find "$out" -name '.voxflow-tmp-*' | grep -q .; then
  echo "temporary files left: $(find "$out" -name '.voxflow-tmp-*')" >&2
  exit 1
fi

"$voxflow" batch --collect "$out"
[ "$(grep -c ',done,' "$out/summary.csv")" = 6 ]
grep -q '^ircadb17,liver,ok,0\.[5-9]' "$out/metrics.csv" ||
  { echo "no liver Dice >= 0.5 for ircadb17 in metrics.csv: $(cat "$out/metrics.csv")" >&2; exit 1; }
grep -q '6 cases, 6 done, 0 failed, 0 not run' "$out/summary.md"
echo "slurm: ok"
