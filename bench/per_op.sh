#!/usr/bin/env bash
# The cost of one operation of a twinloop_anchors workload (one ping-pong
# hand-off, one spawned task, ...) in the two ways that stay exact or nearly
# so on a shared, noisy machine (docs/PERFORMANCE.md, "Simulated loop hand-off
# cost (issue 8 rerun)"):
#
#   bench/per_op.sh instr BIN MODE N1 N2 [ARGS...]
#       instructions per operation under callgrind: (I(N2) - I(N1)) / (N2 - N1),
#       so that start-up and shutdown cancel out. Exact and repeatable.
#   bench/per_op.sh wall REPS BIN... -- MODE N [ARGS...]
#       ns_per_op of REPS runs of each BIN, interleaved, each pinned to CPU 1
#       with a real-time priority (chrt -f 50: other builds cannot preempt it;
#       needs root); prints min / p10 / median per binary. Compare p10s.
#
# BIN is a twinloop_anchors binary: copy bazel-bin/bench/twinloop_anchors
# (built with --config=opt) somewhere first, to compare two versions, e.g.
#   bench/per_op.sh instr /tmp/old pingpong-sim 100000 300000
#   bench/per_op.sh wall 50 /tmp/old /tmp/new -- pingpong-sim 200000
#   bench/per_op.sh wall 30 /tmp/old /tmp/new -- spawn-sim 4000 each
set -euo pipefail

die() {
  echo "per_op.sh: $*" >&2
  exit 2
}
is_count() { [[ "$1" =~ ^[1-9][0-9]*$ ]]; }

run_instr() {
  (($# >= 4)) || die "usage: per_op.sh instr BIN MODE N1 N2 [ARGS...]"
  local bin=$1 mode=$2 n1=$3 n2=$4
  shift 4
  [[ -x "$bin" ]] || die "not an executable: $bin"
  is_count "$n1" && is_count "$n2" || die "N1 and N2 must be positive integers (got '$n1', '$n2')"
  ((n2 > n1)) || die "N2 must be larger than N1 (got $n1, $n2)"
  command -v valgrind >/dev/null || die "valgrind is not installed"
  local dir
  dir=$(mktemp -d)
  trap 'rm -rf "$dir"' RETURN
  local counts=()
  for n in "$n1" "$n2"; do
    if ! valgrind --tool=callgrind --callgrind-out-file="$dir/cg.$n" "$bin" "$mode" "$n" "$@" \
      >"$dir/out.$n" 2>"$dir/err.$n"; then
      cat "$dir/err.$n" >&2
      die "$bin $mode $n $* failed under callgrind"
    fi
    grep -q '^RESULT ' "$dir/out.$n" || die "$bin $mode $n $*: no RESULT line"
    local c
    c=$(sed -n 's/^==[0-9]*== Collected : \([0-9]*\)$/\1/p' "$dir/err.$n")
    [[ -n "$c" ]] || die "no instruction count in callgrind's output"
    counts+=("$c")
  done
  local per
  per=$(awk -v a="${counts[0]}" -v b="${counts[1]}" -v n1="$n1" -v n2="$n2" \
    'BEGIN { printf "%.1f", (b - a) / (n2 - n1) }')
  echo "$(basename "$bin") $mode $*: $per instructions per operation" \
    "(${counts[0]} at $n1, ${counts[1]} at $n2)"
}

run_wall() {
  (($# >= 4)) || die "usage: per_op.sh wall REPS BIN... -- MODE N [ARGS...]"
  local reps=$1
  shift
  is_count "$reps" || die "REPS must be a positive integer (got '$reps')"
  local bins=()
  while (($# > 0)) && [[ "$1" != "--" ]]; do
    [[ -x "$1" ]] || die "not an executable: $1"
    bins+=("$1")
    shift
  done
  (($# >= 3)) || die "usage: per_op.sh wall REPS BIN... -- MODE N [ARGS...] (missing '--', MODE or N)"
  ((${#bins[@]} > 0)) || die "no BIN before '--'"
  shift  # --
  is_count "$2" || die "N must be a positive integer (got '$2')"
  chrt -f 50 true 2>/dev/null || die "chrt -f 50 is refused here (it needs root)"
  taskset -c 1 true 2>/dev/null || die "taskset -c 1 is refused here (no CPU 1?)"
  local dir
  dir=$(mktemp -d)
  trap 'rm -rf "$dir"' RETURN
  for ((i = 0; i < reps; ++i)); do
    for b in "${bins[@]}"; do
      local line rc=0
      line=$(chrt -f 50 taskset -c 1 "$b" "$@") || rc=$?
      ((rc == 0)) || die "$b $* failed (exit status $rc)"
      local v
      v=$(sed -n 's/.* ns_per_op=\([0-9.]*\).*/\1/p' <<<"$line")
      [[ -n "$v" ]] || die "$b $*: no ns_per_op in '$line'"
      echo "$v" >>"$dir/$(basename "$b").$(echo -n "$b" | md5sum | cut -c1-8)"
    done
  done
  for b in "${bins[@]}"; do
    sort -n "$dir/$(basename "$b").$(echo -n "$b" | md5sum | cut -c1-8)" |
      awk -v b="$b" -v m="$*" '{ a[NR] = $1 }
        END { printf "%-28s %-22s min %7.1f  p10 %7.1f  median %7.1f  ns/op (%d runs)\n",
              b, m, a[1], a[int(NR / 10) + 1], a[int((NR + 1) / 2)], NR }'
  done
}

(($# >= 1)) || die "usage: per_op.sh instr|wall ... (see the comment at the top)"
what=$1
shift
case "$what" in
  instr) run_instr "$@" ;;
  wall) run_wall "$@" ;;
  *) die "unknown measurement '$what' (instr or wall)" ;;
esac
