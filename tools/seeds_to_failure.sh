#!/usr/bin/env bash
# Seeds to the first failure of a simulated test under a strategy, per first
# seed, and their median (docs/exploration.md, "Measured: seeds to the first
# failure").
#
#   tools/seeds_to_failure.sh BIN TEST STRATEGY MAX_SEEDS FIRST_SEED...
#   tools/seeds_to_failure.sh bazel-bin/tests/planted/planted_order_test \
#       PlantedOrder.StaleReadAfterARedirect portfolio 3000 $(seq 0 1001 26026)
#
# For each first seed F it runs the sweep `--twinloop_first_seed=F
# --twinloop_seeds=MAX_SEEDS --twinloop_strategy=STRATEGY
# --twinloop_max_failures=1 --twinloop_shrink=0` and records the failing
# seed - F + 1. Prints one line: TEST STRATEGY median=M : <figure per first
# seed>. A sweep that finds no failure counts as "> MAX_SEEDS" (printed
# ">MAX_SEEDS", and the median is then a lower bound, said so); a sweep
# that fails to run at all (a bad binary, filter or flag) stops the script.
set -euo pipefail

die() {
  echo "seeds_to_failure.sh: $*" >&2
  exit 2
}
(($# >= 5)) || die "usage: seeds_to_failure.sh BIN TEST STRATEGY MAX_SEEDS FIRST_SEED..."
bin=$1 test=$2 strategy=$3 max=$4
shift 4
[[ -x "$bin" ]] || die "not an executable: $bin"
[[ "$max" =~ ^[1-9][0-9]*$ ]] || die "MAX_SEEDS must be a positive integer (got '$max')"

figures=()
sortable=()
missing=0
for first in "$@"; do
  [[ "$first" =~ ^[0-9]+$ ]] || die "a first seed must be a non-negative integer (got '$first')"
  set +e
  out=$("$bin" --gtest_filter="$test" --twinloop_first_seed="$first" --twinloop_seeds="$max" \
    --twinloop_strategy="$strategy" --twinloop_max_failures=1 --twinloop_shrink=0 2>&1)
  rc=$?
  set -e
  seed=$(grep -o "FAILED at seed [0-9]*" <<<"$out" | head -1 | grep -o "[0-9]*$" || true)
  if [[ -n "$seed" ]]; then
    n=$((seed - first + 1))
    figures+=("$n")
    sortable+=("$n")
  elif ((rc == 0)) && grep -q "\[  PASSED  \] 1 test" <<<"$out"; then
    figures+=(">$max")
    sortable+=($((max + 1)))
    missing=$((missing + 1))
  else
    echo "$out" | tail -20 >&2
    die "the sweep from seed $first neither failed nor passed one test (exit $rc): check BIN, TEST and STRATEGY"
  fi
done
median=$(printf "%s\n" "${sortable[@]}" | sort -n | sed -n "$(((${#sortable[@]} + 1) / 2))p")
if ((median > max)); then median=">$max"; fi
note=""
if ((missing > 0)); then note=" ($missing of ${#figures[@]} sweeps found no failure in $max seeds)"; fi
echo "$test $strategy median=$median$note : ${figures[*]}"
