#!/usr/bin/env bash
# The instruction-count table of README's performance section, for one or more builds of the
# extension side by side: bash bench/instructions.sh [NAME=PATH.so ...] (default: now=dist/crr.so).
# `make instructions` runs it; it needs valgrind and the workload example
# (cargo build --release --examples).
#
# Each build is copied to a path of the same length first: the path's length moves the heap's
# layout, and with it malloc's share of the counts (w1 of one build: 273.7M at one path,
# 277.9M at a longer one), so two builds are compared only at paths of equal length. Even
# then the layout can favour either build: two builds read +0.6% apart on w1 here and -0.9%
# at two other paths of equal length, so w1 changes under about 1.5% are noise. Counts are in
# millions of instructions (callgrind's Ir); a step alone is the difference of two runs, or
# the run counted inside one function (--toggle-collect), as README says for each row.
#
# glibc's memset clears a block of 2 KiB or more with `rep stosb`, which callgrind counts as
# one instruction per byte, where below 2 KiB it counts the vector loop's few dozen: a
# trigger frame (SQLite zeroes one per statement that fires a trigger) that grows past 2 KiB
# would read as about 2,000 more instructions per statement for what costs the CPU the same
# (measured on a trial build: W1 at 100,000 rows, best of five, 192 ms both ways). The runs
# here raise that threshold, so every memset is counted as its vector loop. (Until 2026-12-05
# they did not: the builds measured before then count about 0.4% less this way.)
export GLIBC_TUNABLES=glibc.cpu.x86_rep_stosb_threshold=1000000000
set -euo pipefail

cd "$(dirname "$0")/.."
workload=target/release/examples/workload
[ -x "$workload" ] || { echo "build the workload first: cargo build --release --examples" >&2; exit 1; }
command -v valgrind > /dev/null || { echo "valgrind is needed (apt-get install valgrind)" >&2; exit 1; }

[ $# -gt 0 ] || set -- now=dist/crr.so
tmp=$(mktemp -d /tmp/crr-instr.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

# count PATH.so FUNCTION|- WORKLOAD MODE ROWS: the instructions of one workload run, all of
# them (-) or those inside FUNCTION.
count() {
  local ext=$1 toggle=()
  [ "$2" = - ] || toggle=("--toggle-collect=$2")
  shift 2
  local n
  n=$(CRR_EXTENSION=$ext valgrind --tool=callgrind --callgrind-out-file=/dev/null "${toggle[@]}" "$workload" "$@" 2>&1 |
    sed -n 's/.*Collected : *//p' | tr -d ,)
  [ -n "$n" ] || { echo "no count for: $workload $* (${toggle[*]})" >&2; exit 1; }
  echo "$n"
}

millions() { awk -v n="$1" 'BEGIN { printf (n >= 1e8 ? "%.0fM" : n >= 1e7 ? "%.1fM" : "%.2fM"), n / 1e6 }'; }

rows=("insert 20k rows, one transaction (w1)"
  "update one column of every row (w3 - w1)"
  "delete 10% (w4 - w1)"
  "read all 60k changes (w5 - w1)"
  "apply those changes to an empty replica (w6, apply step)"
  "the same after an update of every row (w6u, apply step)"
  "w7: update 10% on two replicas, exchange both ways"
  "3,000 single-row insert transactions (w2)"
  "read 100 scattered changes of 100k rows (since)"
  "2,000 UPDATEs, each prepared (prep - w1)"
  "merge 10 rows of 500 columns into an empty replica (wide, apply step)"
  "text keys: insert 20k rows (w1, CRR_BENCH_KEY=TEXT)"
  "text keys: update one column of every row (w3 - w1)"
  "text keys: apply all changes to an empty replica (w6, apply step)")
names=()
declare -A cell raw
i=0
for arg in "$@"; do
  name=${arg%%=*}
  path=${arg#*=}
  [ -f "$path" ] || { echo "no such build: $path" >&2; exit 1; }
  ext=$tmp/ext$(printf %03d $i).so
  cp "$path" "$ext"
  names+=("$name")
  w1=$(count "$ext" - w1 crr 20000)
  w3=$(count "$ext" - w3 crr 20000)
  w4=$(count "$ext" - w4 crr 20000)
  w5=$(count "$ext" - w5 crr 20000)
  values=("$w1" $((w3 - w1)) $((w4 - w1)) $((w5 - w1))
    "$(count "$ext" workload::shared::apply_changes w6 crr 20000)"
    "$(count "$ext" workload::shared::apply_changes w6u crr 20000)"
    "$(count "$ext" workload::w7 w7 crr 20000)"
    "$(count "$ext" - w2 crr 3000)"
    "$(count "$ext" workload::since_read since crr 100000)"
    $(($(count "$ext" - prep crr 20000) - w1))
    "$(count "$ext" workload::shared::apply_changes wide crr 10)")
  # The same table keyed by text (not its rowid: the clock holds packed keys).
  t1=$(CRR_BENCH_KEY=TEXT count "$ext" - w1 crr 20000)
  t3=$(CRR_BENCH_KEY=TEXT count "$ext" - w3 crr 20000)
  values+=("$t1" $((t3 - t1)) "$(CRR_BENCH_KEY=TEXT count "$ext" workload::shared::apply_changes w6 crr 20000)")
  for r in "${!rows[@]}"; do
    raw[$r,$i]=${values[$r]}
    cell[$r,$i]=$(millions "${values[$r]}")
  done
  i=$((i + 1))
done

# With two builds, a last column says how the second differs from the first.
two=$([ ${#names[@]} -eq 2 ] && echo 1 || echo 0)
printf '| work |'
printf ' %s |' "${names[@]}"
[ "$two" = 0 ] || printf ' change |'
printf '\n|---|'
printf -- '---:|%.0s' "${names[@]}"
[ "$two" = 0 ] || printf -- '---:|'
printf '\n'
for r in "${!rows[@]}"; do
  printf '| %s |' "${rows[$r]}"
  for j in "${!names[@]}"; do
    printf ' %s |' "${cell[$r,$j]}"
  done
  [ "$two" = 0 ] || awk -v a="${raw[$r,0]}" -v b="${raw[$r,1]}" 'BEGIN { printf " %+.1f%% |", (b - a) * 100 / a }'
  printf '\n'
done
