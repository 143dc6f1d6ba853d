#!/usr/bin/env bash
# twinloop's benchmarks side by side with the performance anchors
# (../shared/bench: raw C++20 reference, asio, Python asyncio / trio), all rows
# run round-robin in one run, ratios taken per round. See docs/PERFORMANCE.md.
#
#   bench/compare.sh                   3 rounds (~2.5 min + ~30-40 s for trio's one run)
#   RUNS=5 bench/compare.sh            more rounds (noisy machine)
#   PYTHON_ROWS=1 bench/compare.sh     add the asyncio / trio rows (slow)
#   ASYNCIO_QUEUE=0 bench/compare.sh   drop asyncio's Queue ping-pong row (on by default:
#                                      the anchor of the Queue ping-pong rows, ~8 s per run)
#   SYNC_ROWS=0 bench/compare.sh       drop issue 3's rows (Queue ping-pong / throughput, Lock)
#   ONLY=issue3 bench/compare.sh       issue 3's rows and the ping-pong rows they compare with
#   TRIO_RUNS=0 bench/compare.sh       skip trio's virtual-sleep row (~30 s per run)
#   GATHER_ROWS=0 bench/compare.sh     drop the spawn rows joined with gather(vector)
#   ONLY=echo bench/compare.sh         the TCP echo rows only (workload 4: request/response and
#                                      bulk; twinloop's echo_server next to raw epoll, libuv, asio;
#                                      with PYTHON_ROWS=1 also the asyncio servers)
#   ONLY=subproc bench/compare.sh      workload 5 only: spawn /bin/true and wait (raw posix_spawn +
#                                      pidfd REF, asio, twinloop's real loop)
#   SUBPROC_ROWS=0 bench/compare.sh    drop workload 5's rows
#   ECHO_ROWS=0 bench/compare.sh       drop the TCP echo rows (on by default, ~40 s per round)
#   ECHO_DIAG=1 bench/compare.sh       add the echo row "streams, read(65536)" (a string per read)
#   ONLY=pingpong bench/compare.sh     rows whose workload / key / system contains the text
#                                      (comma-separated: any of them)
#   QUICK=1 RUNS=1 bench/compare.sh    smoke test, counts /10 (figures not comparable)
#
# Builds //bench:twinloop_anchors and //bench:echo_server with --config=opt,
# copies ../shared/bench (read-only) into bench/results/anchors_build/ and
# compiles the anchors there with g++ -std=c++20 -O2 / gcc -O2 (as its
# run_anchors.sh does), then runs
# bench/compare.py. Results: bench/results/compare-<UTC>.md / .json
# (bench/results/ is git-ignored). Without ../shared/bench only twinloop's
# rows run (no ratios, no targets); the echo rows need the anchors' client,
# so they are skipped then.
set -euo pipefail
ROOT=$(cd "$(dirname "$(readlink -f "$0")")/.." && pwd)
cd "$ROOT"
OUT=bench/results
mkdir -p "$OUT/bin"

# ---- twinloop
echo "compare.sh: bazel build --config=opt //bench:twinloop_anchors //bench:echo_server" >&2
bazel build --config=opt //bench:twinloop_anchors //bench:echo_server >&2
# Copy the binaries: bazel-bin follows whatever configuration was built last,
# and other builds on this machine may flip it while we measure.
BIN_DIR=$(bazel info --config=opt bazel-bin 2>/dev/null)
install -m 755 "$BIN_DIR/bench/twinloop_anchors" "$OUT/bin/twinloop_anchors"
install -m 755 "$BIN_DIR/bench/echo_server" "$OUT/bin/echo_server"
export TWINLOOP_ANCHORS="$ROOT/$OUT/bin/twinloop_anchors"
export TWINLOOP_ECHO_SERVER="$ROOT/$OUT/bin/echo_server"

# ---- anchors
PYTHON=${PYTHON:-/usr/bin/python3}
export PYTHON
SHARED=${SHARED_BENCH:-$ROOT/../shared/bench}
export ANCHORS_DIR=""
if [[ -d $SHARED ]]; then
  need=(libasio-dev)
  if [[ ${PYTHON_ROWS:-} == 1 || ${TRIO_RUNS:-1} != 0 ]]; then need+=(python3-trio); fi
  if [[ ${ECHO_ROWS:-1} != 0 ]]; then need+=(libuv1-dev); fi
  missing=()
  for p in "${need[@]}"; do
    dpkg -s "$p" 2>/dev/null | grep -q '^Status: install ok installed' || missing+=("$p")
  done
  if ((${#missing[@]})); then
    if [[ $(id -u) == 0 ]]; then
      echo "compare.sh: installing ${missing[*]}" >&2
      apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2
    else
      echo "compare.sh: missing ${missing[*]} (not root: not installing; those rows will fail)" >&2
    fi
  fi
  A=$OUT/anchors_build
  rm -rf "$A"
  mkdir -p "$A"
  cp -r "$SHARED/." "$A/"
  rm -rf "$A/build" "$A/results"
  mkdir -p "$A/build"
  CXX=${CXX:-g++}
  CC=${CC:-gcc}
  ANCHOR_CXXFLAGS="-std=c++20 -O2 -Wall -Wextra"
  ANCHOR_CFLAGS="-O2 -Wall -Wextra"
  echo "compare.sh: building the anchors in $A with $CXX $ANCHOR_CXXFLAGS / $CC $ANCHOR_CFLAGS" >&2
  $CXX $ANCHOR_CXXFLAGS -o "$A/build/raw_sched" "$A/cpp/raw_sched.cpp" &
  pid_raw=$!
  $CXX $ANCHOR_CXXFLAGS -pthread -o "$A/build/asio_anchors" "$A/cpp/asio_anchors.cpp" &
  pid_asio=$!
  wait "$pid_raw"
  wait "$pid_asio"
  # Workload 5's limit reference.
  $CXX $ANCHOR_CXXFLAGS -o "$A/build/raw_subproc" "$A/cpp/raw_subproc.cpp"
  if [[ ${ECHO_ROWS:-1} != 0 ]]; then
    # Workload 4: the common client, the raw epoll reference and libuv's
    # server (a missing libuv fails only its own rows).
    $CC $ANCHOR_CFLAGS -o "$A/build/echo_client" "$A/c/echo_client.c"
    $CC $ANCHOR_CFLAGS -o "$A/build/echo_epoll" "$A/c/echo_epoll.c"
    $CC $ANCHOR_CFLAGS -o "$A/build/echo_uv" "$A/c/echo_uv.c" -luv ||
      echo "compare.sh: echo_uv did not build (libuv1-dev missing?): its rows will fail" >&2
  fi
  export ANCHORS_DIR="$ROOT/$A"
  export ANCHOR_BUILD="$CXX $ANCHOR_CXXFLAGS; $CC $ANCHOR_CFLAGS"
else
  echo "compare.sh: $SHARED not found: running twinloop's rows only (no anchors, no ratios)" >&2
fi

exec "$PYTHON" bench/compare.py
