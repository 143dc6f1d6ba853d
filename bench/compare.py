#!/usr/bin/python3
"""twinloop's rows side by side with the performance anchors (../shared/bench).

Called by bench/compare.sh, which builds everything first. Runs every row
RUNS times ROUND-ROBIN (round 1: every row once, then round 2, ...), so the
slow drifts of a shared machine hit all systems alike, then prints:

  * a table: workload, system, median / min / max, unit, "x REF" = the median
    over rounds of the ratio to the raw C++20 reference measured in the same
    round (1 = as fast as the reference, 10 = ten times slower, whatever the
    unit);
  * the targets (PASS / FAIL), each computed from per-round ratios.

and writes bench/results/compare-<UTC>.md and .json (every raw value).

Stdlib only. Environment knobs:
  RUNS=3          rounds
  TRIO_RUNS=1     rounds that include the trio virtual-sleep row (~30 s each);
                  0 drops it (the ">= 100x trio" target is then SKIPPED)
  PYTHON_ROWS=1   adds the asyncio / trio rows of ping-pong and spawn and the
                  asyncio virtual-clock row (slow; off by default)
  ASYNCIO_QUEUE=1 the asyncio ping-pong row (two asyncio.Queue(), ~8 s per run):
                  on by default, since it is the anchor of the Queue ping-pong
                  rows (issue 3); 0 drops it (unless PYTHON_ROWS=1)
  SYNC_ROWS=1     issue 3's rows: Queue ping-pong (unbounded and maxsize 1),
                  Queue throughput, Lock; 0 drops them
  GATHER_ROWS=0   drops the spawn rows joined with gather(vector)
  MEM_ROWS=0      drops issue 13's memory rows (1 M tasks alive, each sleeping once:
                  peak RSS, real and simulated loop)
  ECHO_ROWS=1     workload 4's TCP echo rows (4a request/response, 4b bulk):
                  twinloop's echo_server (streams, protocol) next to the
                  anchors' raw epoll (REF), libuv and asio servers, all driven by
                  the anchors' echo_client; 0 drops them. With PYTHON_ROWS=1
                  also the asyncio servers (streams, streams with glibc malloc
                  tuned [diag], Protocol). Needs the anchors (the client is
                  theirs): without them the echo rows are skipped.
  SUBPROC_ROWS=1  workload 5's rows (spawn /bin/true and wait, 2,000 times: raw
                  posix_spawn + pidfd REF, asio, twinloop's real loop; with
                  PYTHON_ROWS=1 also asyncio); 0 drops them
  ECHO_DIAG=1     adds the diagnostic echo row "streams, read(65536)" (a
                  std::string per read, asyncio's literal code)
  ONLY=substr     rows whose workload key, row key or system label contains
                  substr; several comma-separated: any of them (ONLY=echo: the
                  TCP echo rows). ONLY=issue3
                  picks issue 3's rows plus the ping-pong rows they are
                  compared with (raw REF, asio, asyncio Queue, Future ping-pong)
  QUICK=1         all counts / 10 (smoke test; figures not comparable)
  PYTHON=/usr/bin/python3   interpreter for the Python anchors
Paths (set by compare.sh): TWINLOOP_ANCHORS (our binary), TWINLOOP_ECHO_SERVER
(our echo server), ANCHORS_DIR (the copy of ../shared/bench with build/ inside;
empty: our rows only).

Echo rows (kind "echo") run as the anchors' tools/anchors.py runs them: the
server process is started fresh for each measurement, prints "PORT n", the
anchors' echo_client is run against it, then the server gets SIGTERM and its
CPU time (user + sys) is read from wait4. twinloop's server must then exit 0
(a server that crashes or hangs on SIGTERM fails its row); the anchors'
servers simply die of the signal.
"""
import datetime
import json
import os
import platform
import select
import signal
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results")
OURS = os.environ.get("TWINLOOP_ANCHORS", os.path.join(RESULTS, "bin", "twinloop_anchors"))
OURS_ECHO = os.environ.get("TWINLOOP_ECHO_SERVER", os.path.join(RESULTS, "bin", "echo_server"))
ANCHORS = os.environ.get("ANCHORS_DIR", "")
PY = os.environ.get("PYTHON", "/usr/bin/python3")
RUNS = int(os.environ.get("RUNS", "3"))
TRIO_RUNS = int(os.environ.get("TRIO_RUNS", "1"))
PYTHON_ROWS = os.environ.get("PYTHON_ROWS") == "1"
ASYNCIO_QUEUE = os.environ.get("ASYNCIO_QUEUE", "1") != "0"
SYNC_ROWS = os.environ.get("SYNC_ROWS", "1") != "0"
GATHER_ROWS = os.environ.get("GATHER_ROWS", "1") != "0"
MEM_ROWS = os.environ.get("MEM_ROWS", "1") != "0"
ECHO_ROWS = os.environ.get("ECHO_ROWS", "1") != "0"
ECHO_DIAG = os.environ.get("ECHO_DIAG") == "1"
SUBPROC_ROWS = os.environ.get("SUBPROC_ROWS", "1") != "0"
ONLY = [t for t in os.environ.get("ONLY", "").split(",") if t]
QUICK = os.environ.get("QUICK") == "1"

div = 10 if QUICK else 1
PINGPONG_N = 1_000_000 // div
SPAWN_N = 1_000_000 // div
VS_TASKS, VS_ITERS = 10_000 // div, 100
QUEUE_ITEMS = 1_000_000 // div
LOCK_PAIRS = 1_000_000 // div
SUBPROC_K = 2000 // div
SLEEPERS_N = 1_000_000 // div
REAL_SCALE = 1000
# Workload 4 (the anchors' counts).
ECHO_CONNS, ECHO_TOTAL, ECHO_MSG = 64, 200_000 // div, 64
BULK_BYTES, BULK_CHUNK = (1 << 30) // div, 65536
# glibc malloc tuned as the anchors' "[diag]" asyncio row (tools/anchors.py).
MALLOC_TUNED = "glibc.malloc.mmap_threshold=4194304:glibc.malloc.trim_threshold=67108864"

# workload key -> (label, unit, metric key in the RESULT line, higher is better)
W = {
    "pingpong": ("1 ping-pong switch (1 M hand-offs)", "ns/hand-off", "ns_per_op", False),
    "spawn": ("2 spawn many (1 M tasks)", "ns/task", "ns_per_op", False),
    "vsleep": ("3 virtual sleep (10k tasks x 100)", "sim-s per wall-s", "sim_per_wall", True),
    # issue 3; no anchor exists for these two: their "x REF" is taken against
    # the raw reference's ping-pong hand-off of the same round (REF_FROM).
    "qthru": ("Q queue throughput (1 M items, 1 producer / 1 consumer)", "ns/item", "ns_per_op",
              False),
    "lock": ("L Lock acquire/release (1 M pairs)", "ns/pair", "ns_per_op", False),
    "subproc": (f"5 subprocess spawn ({SUBPROC_K:,} x /bin/true)", "spawns/s", "per_s", True),
    # issue 13: the memory of a task.
    "mem": (f"M memory: {SLEEPERS_N:,} tasks alive, each sleeping once", "MiB peak RSS",
            "peak_rss_mib", False),
    "echo_rr": (f"4a TCP echo {ECHO_MSG} B x {ECHO_CONNS} conns ({ECHO_TOTAL:,} round trips)",
                "round trips/s", "rt_per_s", True),
    "echo_bulk": (f"4b TCP echo bulk {BULK_BYTES / (1 << 30):g} GiB, {BULK_CHUNK // 1024} KiB writes",
                  "MB/s", "mb_per_s", True),
}
# Workloads without an anchor of their own: x REF uses this workload's raw row.
REF_FROM = {"qthru": "pingpong", "lock": "pingpong"}
if QUICK:
    W = {k: (v[0] + " [QUICK /10]",) + v[1:] for k, v in W.items()}


def anchor(*parts):
    return os.path.join(ANCHORS, *parts)


def rows():
    r = []

    def add(w, key, system, cmd, ref=False, runs=None, ours=False, tags=(), server=None, env=None):
        """server: for echo rows, the server's command (cmd is then the client's)."""
        if ONLY and not any(t in w or t in system or t in key or t in tags for t in ONLY):
            return
        r.append(dict(w=w, key=key, system=system, cmd=[str(c) for c in cmd], ref=ref,
                      runs=RUNS if runs is None else min(runs, RUNS), ours=ours,
                      kind="echo" if server else "run",
                      server=[str(c) for c in server] if server else None, env=env or {}))

    have_anchors = bool(ANCHORS) and os.path.exists(anchor("build", "raw_sched"))
    apy = lambda *a: [PY, anchor("py", "asyncio_anchors.py"), *a]  # noqa: E731
    tpy = lambda *a: [PY, anchor("py", "trio_anchors.py"), *a]  # noqa: E731

    i3 = ("issue3",) if SYNC_ROWS else ()  # rows issue 3's comparisons need
    if have_anchors:
        add("pingpong", "raw", "raw C++20 coro + minimal scheduler (REF)",
            [anchor("build", "raw_sched"), "pingpong", PINGPONG_N], ref=True, tags=i3)
        add("pingpong", "asio", "asio awaitable + experimental::channel",
            [anchor("build", "asio_anchors"), "pingpong", PINGPONG_N], tags=i3)
        if PYTHON_ROWS or ASYNCIO_QUEUE:
            add("pingpong", "asyncio", "Python asyncio (two asyncio.Queue())",
                apy("pingpong", PINGPONG_N), tags=i3)
        if PYTHON_ROWS:
            add("pingpong", "trio", "Python trio (memory channel)", tpy("pingpong", PINGPONG_N))
    add("pingpong", "ours-real", "twinloop real loop (Future per hand-off)",
        [OURS, "pingpong-real", PINGPONG_N], ours=True, tags=i3)
    add("pingpong", "ours-sim", "twinloop sim loop (Future per hand-off)",
        [OURS, "pingpong-sim", PINGPONG_N], ours=True, tags=i3)
    if SYNC_ROWS:
        for loop in ("real", "sim"):
            add("pingpong", f"ours-q-{loop}", f"twinloop {loop} loop: two Queue<long>() (unbounded)",
                [OURS, f"queue-pingpong-{loop}", PINGPONG_N, "unbounded"], ours=True, tags=i3)
            add("pingpong", f"ours-q-{loop}-bounded",
                f"twinloop {loop} loop: two Queue<long>(1) (bounded)",
                [OURS, f"queue-pingpong-{loop}", PINGPONG_N, "bounded"], ours=True, tags=i3)

    if have_anchors:
        add("spawn", "raw", "raw C++20 coro + minimal scheduler (REF)",
            [anchor("build", "raw_sched"), "spawn", SPAWN_N], ref=True)
        add("spawn", "asio", "asio co_spawn + completion counter",
            [anchor("build", "asio_anchors"), "spawn", SPAWN_N])
        if PYTHON_ROWS:
            add("spawn", "asyncio", "Python asyncio (create_task + gather)", apy("spawn", SPAWN_N))
            add("spawn", "trio", "Python trio (nursery.start_soon)", tpy("spawn", SPAWN_N))
    add("spawn", "ours-real", "twinloop real: create_task, await each",
        [OURS, "spawn-real", SPAWN_N, "each"], ours=True)
    add("spawn", "ours-sim", "twinloop sim: create_task, await each",
        [OURS, "spawn-sim", SPAWN_N, "each"], ours=True)
    if GATHER_ROWS:
        add("spawn", "ours-real-gather", "twinloop real: create_task, gather(vector)",
            [OURS, "spawn-real", SPAWN_N, "gather"], ours=True)
        add("spawn", "ours-sim-gather", "twinloop sim: create_task, gather(vector)",
            [OURS, "spawn-sim", SPAWN_N, "gather"], ours=True)

    if have_anchors:
        add("vsleep", "raw", "raw C++20 coro + virtual-time heap (REF)",
            [anchor("build", "raw_sched"), "vsleep", VS_TASKS, VS_ITERS], ref=True)
        if TRIO_RUNS > 0:
            add("vsleep", "trio", "Python trio + MockClock(autojump_threshold=0)",
                tpy("vsleep", VS_TASKS, VS_ITERS), runs=TRIO_RUNS)
        if PYTHON_ROWS:
            add("vsleep", "asyncio", "Python asyncio + 15-line virtual-clock loop",
                apy("vsleep", VS_TASKS, VS_ITERS))
        add("vsleep", "asio-scaled", f"asio steady_timer REAL clock, sleeps /{REAL_SCALE} [scaled]",
            [anchor("build", "asio_anchors"), "sleep", VS_TASKS, VS_ITERS, REAL_SCALE])
    add("vsleep", "ours-sim", "twinloop sim loop (virtual time)",
        [OURS, "vsleep-sim", VS_TASKS, VS_ITERS], ours=True)
    add("vsleep", "ours-real-scaled", f"twinloop real loop REAL clock, sleeps /{REAL_SCALE} [scaled]",
        [OURS, "vsleep-real", VS_TASKS, VS_ITERS, REAL_SCALE], ours=True)

    if MEM_ROWS:
        for loop in ("real", "sim"):
            add("mem", f"ours-{loop}", f"twinloop {loop}: create_task x {SLEEPERS_N:,}, each sleep(1 ms)",
                [OURS, f"sleepers-{loop}", SLEEPERS_N], ours=True)

    if SYNC_ROWS:
        for loop in ("real", "sim"):
            for maxsize, what in ((0, "unbounded"), (64, "maxsize 64"), (1, "maxsize 1")):
                k = f"ours-{loop}-{'unbounded' if maxsize == 0 else maxsize}"
                add("qthru", k, f"twinloop {loop}: Queue<long> {what}",
                    [OURS, f"queue-throughput-{loop}", QUEUE_ITEMS, maxsize], ours=True, tags=i3)
        for loop in ("real", "sim"):
            for tasks, style, yld, what in (
                    (1, "acquire", "noyield", "1 task, acquire(); release() (uncontended)"),
                    (1, "scoped", "noyield", "1 task, scoped() guard (uncontended)"),
                    (1, "acquire", "yield", "1 task, acquire(); sleep(0); release() (yield only)"),
                    (2, "acquire", "yield", "2 tasks, acquire(); sleep(0); release()"),
                    (2, "scoped", "yield", "2 tasks, scoped() guard; sleep(0)"),
                    (8, "acquire", "yield", "8 tasks, acquire(); sleep(0); release()"),
                    (8, "scoped", "yield", "8 tasks, scoped() guard; sleep(0)")):
                k = f"ours-{loop}-{tasks}-{style}-{yld}"
                add("lock", k, f"twinloop {loop}: {what}",
                    [OURS, f"lock-{loop}", tasks, LOCK_PAIRS // tasks, style, yld], ours=True,
                    tags=i3)

    # Workload 5 (issue 12): spawn /bin/true and wait, K times in a row.
    if SUBPROC_ROWS:
        if have_anchors:
            add("subproc", "raw", "raw C++ posix_spawn + pidfd + epoll (REF)",
                [anchor("build", "raw_subproc"), SUBPROC_K], ref=True)
            add("subproc", "asio", "asio: posix_spawn + pidfd stream_descriptor",
                [anchor("build", "asio_anchors"), "subproc", SUBPROC_K])
            if PYTHON_ROWS:
                add("subproc", "asyncio", "Python asyncio create_subprocess_exec", apy("subproc", SUBPROC_K))
        add("subproc", "ours-real", "twinloop real: create_subprocess_exec + wait",
            [OURS, "subproc-real", SUBPROC_K], ours=True)

    # Workload 4: every server driven by the anchors' echo_client (no client,
    # no echo rows).
    have_client = have_anchors and os.path.exists(anchor("build", "echo_client"))
    if ECHO_ROWS and not have_client and (not ONLY or any("echo" in t for t in ONLY)):
        print("note: no anchors' echo_client: the TCP echo rows are skipped", file=sys.stderr)
    if ECHO_ROWS and have_client:
        servers = [
            ("raw", "raw epoll C server (REF)", [anchor("build", "echo_epoll"), 0], True, False, None),
            ("libuv", "libuv server", [anchor("build", "echo_uv"), 0], False, False, None),
            ("asio", "asio awaitable server", [anchor("build", "asio_anchors"), "echo-server", 0],
             False, False, None),
        ]
        if PYTHON_ROWS:
            servers += [
                ("asyncio", "Python asyncio streams server", apy("echo-server", 0), False, False,
                 None),
                ("asyncio-tuned", "Python asyncio streams, malloc tuned [diag]",
                 apy("echo-server", 0), False, False, {"GLIBC_TUNABLES": MALLOC_TUNED}),
                ("asyncio-proto", "Python asyncio Protocol server", apy("echo-server", 0, "--proto"),
                 False, False, None),
            ]
        servers += [
            ("ours-streams", "twinloop streams: read_into + write + drain",
             [OURS_ECHO, "streams", 0], False, True, None),
            ("ours-protocol", "twinloop Protocol: write in data_received",
             [OURS_ECHO, "protocol", 0], False, True, None),
        ]
        if ECHO_DIAG:
            servers.append(("ours-streams-read", "twinloop streams: read(65536) [diag]",
                            [OURS_ECHO, "streams-read", 0], False, True, None))
        client = anchor("build", "echo_client")
        for w, cargs in (("echo_rr", ["rr", ECHO_CONNS, ECHO_TOTAL, ECHO_MSG]),
                         ("echo_bulk", ["bulk", BULK_BYTES, BULK_CHUNK])):
            for key, system, server, ref, ours, env in servers:
                add(w, key, system, [client] + cargs, ref=ref, ours=ours, server=server, env=env)
    return r, have_anchors


def parse(out):
    for line in reversed(out.splitlines()):
        if line.startswith("RESULT "):
            res = {}
            for kv in line.split()[1:]:
                k, v = kv.split("=", 1)
                try:
                    res[k] = float(v)
                except ValueError:
                    res[k] = v
            return res
    raise RuntimeError("no RESULT line in output: " + out[-500:])


def run_echo(row):
    """As the anchors' tools/anchors.py: a fresh server, the client against it,
    SIGTERM, the server's CPU time from wait4."""
    env = {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES"}
    env.update(row["env"])
    srv = subprocess.Popen(row["server"], stdout=subprocess.PIPE, text=True, env=env)
    status = None
    try:
        ready, _, _ = select.select([srv.stdout], [], [], 30)
        line = srv.stdout.readline() if ready else ""
        if not line.startswith("PORT "):
            raise RuntimeError(f"server did not print its port: {line!r}")
        port = line.split()[1]
        client = [row["cmd"][0], port] + row["cmd"][1:]
        p = subprocess.run(client, capture_output=True, text=True, timeout=600)
        if p.returncode != 0:
            raise RuntimeError(f"client exit {p.returncode}: {(p.stderr or p.stdout)[-500:]}")
        res = parse(p.stdout)
    finally:
        srv.send_signal(signal.SIGTERM)
        ru = None
        deadline = time.time() + 30
        while time.time() < deadline:
            pid, status, ru = os.wait4(srv.pid, os.WNOHANG)
            if pid == srv.pid:
                break
            time.sleep(0.005)
        else:
            srv.kill()
            _, status, ru = os.wait4(srv.pid, 0)
            status = "hung"
        srv.returncode = 0  # reaped here; keep Popen from waiting again
        srv.stdout.close()
    if row["ours"] and status != 0:
        what = "did not exit within 30 s of SIGTERM" if status == "hung" else f"wait status {status}"
        raise RuntimeError(f"twinloop's server {what} (expected a clean exit 0)")
    res["server_cpu_s"] = ru.ru_utime + ru.ru_stime
    return res


def run_one(row):
    if row["kind"] == "echo":
        return run_echo(row)
    p = subprocess.run(row["cmd"], capture_output=True, text=True, timeout=900)
    if p.returncode != 0:
        raise RuntimeError(f"exit {p.returncode}: {(p.stderr or p.stdout)[-500:]}")
    res = parse(p.stdout)
    if "sim_s" in res and "wall_s" in res:  # full precision, not the printed one
        res["sim_per_wall"] = res["sim_s"] / res["wall_s"]
    return res


def fmt(x):
    if x is None:
        return "-"
    if x < 1:
        return f"{x:.3g}"
    if x >= 1000:
        return f"{x:,.0f}"
    if x >= 100:
        return f"{x:.0f}"
    if x >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}"


def paired(a, b, f):
    """f(a_value, b_value) for every round where both rows ran; median."""
    vals = [f(x, y) for x, y in zip(a, b) if x is not None and y is not None and x and y]
    return (statistics.median(vals), len(vals)) if vals else (None, 0)


LOAD_AT_START = open("/proc/loadavg").read().split()[:3] if os.path.exists("/proc/loadavg") else []


def versions():
    def sh(cmd):
        try:
            return subprocess.run(cmd, shell=True, capture_output=True, text=True,
                                  timeout=30).stdout.strip()
        except Exception as e:  # noqa: BLE001
            return f"? ({e})"

    return {
        "date_utc": datetime.datetime.utcnow().strftime("%Y-%m-%d %H:%M:%S"),
        "kernel": platform.release(),
        "cpu": sh("lscpu | sed -n 's/^Model name: *//p' | head -1") + f", {os.cpu_count()} cores",
        "load average at start": " ".join(LOAD_AT_START) or "-",
        "load average at end": sh("cut -d' ' -f1-3 /proc/loadavg"),
        "g++": sh("g++ --version | head -1"),
        "twinloop build": "bazel build --config=opt (-O2 -DNDEBUG, -std=c++20)",
        "anchors build": os.environ.get("ANCHOR_BUILD", "-"),
        "python": sh(f"{PY} -c 'import sys; print(sys.version.split()[0])'") + f" ({PY})",
        "trio": sh(f"{PY} -c 'import trio; print(trio.__version__)' 2>/dev/null") or "-",
        "asio (ASIO_VERSION)": sh("sed -n 's/^#define ASIO_VERSION \\([0-9]*\\).*/\\1/p' "
                                  "/usr/include/asio/version.hpp") or "-",
    }


def main():
    todo, have_anchors = rows()
    if not have_anchors:
        print("note: no anchors (../shared/bench not found or not built): running twinloop's rows "
              "only; no ratios, no targets", file=sys.stderr)
    # values[i][round] = RESULT dict or None
    values = {i: [None] * RUNS for i in range(len(todo))}
    errors = {}
    t_start = time.time()
    for rnd in range(RUNS):
        for i, row in enumerate(todo):
            if i in errors or rnd >= row["runs"]:
                continue
            t0 = time.time()
            try:
                res = run_one(row)
            except Exception as e:  # noqa: BLE001
                errors[i] = str(e)
                print(f"[round {rnd + 1}/{RUNS}] FAILED {row['w']} / {row['system']}: {e}",
                      file=sys.stderr, flush=True)
                continue
            values[i][rnd] = res
            label, unit, key, _ = W[row["w"]]
            print(f"[round {rnd + 1}/{RUNS}] {row['w']:9} {row['system']:62} {fmt(res[key]):>9} "
                  f"{unit}  ({time.time() - t0:.1f}s)", file=sys.stderr, flush=True)
    elapsed = time.time() - t_start

    def metric(i):
        key = W[todo[i]["w"]][2]
        return [r[key] if r else None for r in values[i]]

    def server_cpu(i):
        return [r.get("server_cpu_s") if r else None for r in values[i]]

    def cpu_text(w, cpu_s):
        if w == "echo_rr":
            return f"{cpu_s * 1e6 / ECHO_TOTAL:.2f} us/rt"
        return f"{cpu_s / (BULK_BYTES / (1 << 30)):.2f} s/GiB"

    def best(i):
        vals = [v for v in metric(i) if v is not None]
        if not vals:
            return None
        return max(vals) if W[todo[i]["w"]][3] else min(vals)

    def find(w, key):
        return next((i for i, r in enumerate(todo) if r["w"] == w and r["key"] == key), None)

    table = []
    for i, row in enumerate(todo):
        label, unit, key, higher = W[row["w"]]
        vals = [v for v in metric(i) if v is not None]
        e = dict(workload=label, w=row["w"], key=row["key"], system=row["system"], unit=unit,
                 ref=row["ref"], cmd=" ".join(row["cmd"]), error=errors.get(i),
                 raw_runs=values[i])
        if vals:
            e.update(median=statistics.median(vals), min=min(vals), max=max(vals), n=len(vals))
            e["best"] = max(vals) if higher else min(vals)
            ref_i = find(REF_FROM.get(row["w"], row["w"]), "raw")
            if ref_i is not None and not row["ref"]:
                ratio = (lambda v, r: r / v) if higher else (lambda v, r: v / r)
                e["x_ref"], _ = paired(metric(i), metric(ref_i), ratio)
                ref_best = best(ref_i)
                if ref_best:
                    e["x_ref_best"] = ratio(e["best"], ref_best)
            if row["w"] == "vsleep":
                runs = [r for r in values[i] if r]
                e["note"] = (f"wall {fmt(statistics.median(r['wall_s'] for r in runs))} s, "
                             f"sim {fmt(statistics.median(r['sim_s'] for r in runs))} s")
            if row["w"] in REF_FROM and "x_ref" in e:
                e["note"] = "x REF: vs the raw REF ping-pong hand-off (no anchor)"
            if row["kind"] == "echo":
                cpu = [c for c in server_cpu(i) if c is not None]
                if cpu:
                    e["server_cpu_s"] = statistics.median(cpu)
                    e["note"] = f"server CPU {cpu_text(row['w'], statistics.median(cpu))}"
                    ref_i = find(row["w"], "raw")
                    if ref_i is not None and not row["ref"]:
                        v, _ = paired(server_cpu(i), server_cpu(ref_i), lambda o, r: o / r)
                        if v is not None:
                            e["cpu_x_ref"] = v
                            e["note"] += f" ({fmt(v)}x REF's)"
        table.append(e)

    # ---- targets (from the issue): per-round ratios, median over rounds.
    targets = []

    def target(name, w, ours_key, other_key, f, ok, want):
        i, j = find(w, ours_key), find(w, other_key)
        if i is None:
            return
        if j is None:
            targets.append(dict(name=name, value=None, want=want, status="SKIPPED",
                                note=f"no '{other_key}' row in this run"))
            return
        v, n = paired(metric(i), metric(j), f)
        bi, bj = best(i), best(j)
        vb = f(bi, bj) if bi and bj else None
        # Issue 13: met only when both the median of per-round ratios and
        # the best-vs-best ratio meet it.
        status = "SKIPPED" if v is None else (
            "PASS" if ok(v) and (vb is None or ok(vb)) else "FAIL")
        note = f"{n} paired round(s)"
        if v is not None and vb is not None and ok(v) != ok(vb):
            note += f"; median {'passes' if ok(v) else 'fails'}, best vs best " \
                    f"{'passes' if ok(vb) else 'fails'}"
        targets.append(dict(name=name, value=v, best_value=vb, want=want, status=status,
                            note=note))

    # issue 13's targets (those of issues 2 and 3 they replace were looser).
    for loop in ("real", "sim"):
        k = f"ours-{loop}"
        target(f"ping-pong {loop}: twinloop / raw <= 7", "pingpong", k, "raw",
               lambda o, r: o / r, lambda v: v <= 7, "<= 7")
        target(f"ping-pong {loop}: asio / twinloop >= 6", "pingpong", k, "asio",
               lambda o, a: a / o, lambda v: v >= 6, ">= 6")
    for loop in ("real", "sim"):
        for join, limit in (("", 3.0), ("-gather", 3.5)):
            k = f"ours-{loop}{join}"
            jn = "gather" if join else "await each"
            target(f"spawn {loop} ({jn}): twinloop / raw <= {limit:g}", "spawn", k, "raw",
                   lambda o, r: o / r, lambda v, m=limit: v <= m, f"<= {limit:g}")
            target(f"spawn {loop} ({jn}): asio / twinloop >= 1.5", "spawn", k,
                   "asio", lambda o, a: a / o, lambda v: v >= 1.5, ">= 1.5")
    target("virtual sleep sim: twinloop / raw >= 1/2 (sim-s per wall-s)", "vsleep", "ours-sim",
           "raw", lambda o, r: o / r, lambda v: v >= 1 / 2, ">= 0.5")
    target("virtual sleep sim: twinloop / trio MockClock >= 150", "vsleep", "ours-sim", "trio",
           lambda o, t: o / t, lambda v: v >= 150, ">= 150")
    for loop in ("sim", "real"):
        i = find("mem", f"ours-{loop}")
        if i is not None and metric(i):
            vals = [v for v in metric(i) if v is not None]
            if vals:
                v, vb = statistics.median(vals), min(vals)
                status = "PASS" if v <= 256 and vb <= 256 else "FAIL"
                targets.append(dict(name=f"memory {loop}: peak RSS of {SLEEPERS_N:,} sleeping tasks "
                                    "<= 256 MiB", value=v, best_value=vb, want="<= 256", status=status,
                                    note=f"{len(vals)} run(s); absolute, not a ratio"))
    # issue 3: a Queue hand-off costs at most twice a Future hand-off (same loop).
    for loop in ("real", "sim"):
        for suffix, what in (("", "unbounded"), ("-bounded", "maxsize 1")):
            target(f"queue hand-off {loop} ({what}): Queue ping-pong / Future ping-pong <= 2",
                   "pingpong", f"ours-q-{loop}{suffix}", f"ours-{loop}",
                   lambda q, f: q / f, lambda v: v <= 2, "<= 2")

    # issue 10: the TCP echo server (workload 4), per round, median.
    for k, what in (("ours-streams", "streams"), ("ours-protocol", "Protocol")):
        target(f"echo request/response {what}: twinloop / asio >= 1 (round trips/s)", "echo_rr", k,
               "asio", lambda o, a: o / a, lambda v: v >= 1, ">= 1")
        target(f"echo request/response {what}: twinloop / raw epoll >= 0.85", "echo_rr", k, "raw",
               lambda o, r: o / r, lambda v: v >= 0.85, ">= 0.85")
        target(f"echo bulk {what}: twinloop / raw epoll >= 0.90 (MB/s)", "echo_bulk", k, "raw",
               lambda o, r: o / r, lambda v: v >= 0.90, ">= 0.90")

    # issue 12: subprocess spawns per second.
    target("subprocess spawn real: twinloop / raw >= 0.95 (spawns/s)", "subproc", "ours-real", "raw",
           lambda o, r: o / r, lambda v: v >= 0.95, ">= 0.95")
    target("subprocess spawn real: twinloop / asio >= 0.95 (spawns/s)", "subproc", "ours-real", "asio",
           lambda o, a: o / a, lambda v: v >= 0.95, ">= 0.95")

    # ---- comparisons without a target (issue 3): per-round ratios, median.
    comparisons = []

    def compare(name, a, b, f, meaning):
        """a, b: (workload, row key); f(value_a, value_b)."""
        i, j = find(*a), find(*b)
        if i is None or j is None:
            return
        v, n = paired(metric(i), metric(j), f)
        bi, bj = best(i), best(j)
        comparisons.append(dict(name=name, value=v, best_value=f(bi, bj) if bi and bj else None,
                                meaning=meaning, note=f"{n} paired round(s)"))

    for loop in ("real", "sim"):
        for suffix, what in (("", "unbounded"), ("-bounded", "maxsize 1")):
            q = ("pingpong", f"ours-q-{loop}{suffix}")
            compare(f"Queue ping-pong {loop} ({what}) / raw REF", q, ("pingpong", "raw"),
                    lambda o, r: o / r, "x slower than the limit reference")
            compare(f"asio channel / Queue ping-pong {loop} ({what})", ("pingpong", "asio"), q,
                    lambda a, o: a / o, "> 1: twinloop's Queue is faster than asio's channel")
            compare(f"asyncio Queue / Queue ping-pong {loop} ({what})", ("pingpong", "asyncio"), q,
                    lambda a, o: a / o, "> 1: twinloop's Queue is faster than asyncio's")
    # Server CPU time per round trip / per GiB (from wait4): less noisy than
    # throughput on a loaded machine, and it is the server's own cost.
    def compare_cpu(name, a, b, meaning):
        i, j = find(*a), find(*b)
        if i is None or j is None:
            return
        v, n = paired(server_cpu(i), server_cpu(j), lambda x, y: x / y)
        ci = [c for c in server_cpu(i) if c is not None]
        cj = [c for c in server_cpu(j) if c is not None]
        comparisons.append(dict(name=name, value=v,
                                best_value=min(ci) / min(cj) if ci and cj else None,
                                meaning=meaning, note=f"{n} paired round(s)"))

    for w, unit in (("echo_rr", "per round trip"), ("echo_bulk", "per GiB")):
        for k, what in (("ours-streams", "streams"), ("ours-protocol", "Protocol"),
                        ("ours-streams-read", "streams read(65536)")):
            compare_cpu(f"server CPU {unit}: twinloop {what} / raw epoll REF", (w, k), (w, "raw"),
                        "1 = as cheap as the raw server; lower is better")
            compare_cpu(f"server CPU {unit}: twinloop {what} / asio", (w, k), (w, "asio"),
                        "< 1: cheaper than asio's server")

    for loop in ("real", "sim"):
        fut = ("pingpong", f"ours-{loop}")
        for tasks in (2, 8):
            for style in ("acquire", "scoped"):
                lk = ("lock", f"ours-{loop}-{tasks}-{style}-yield")
                compare(f"Lock {loop}, {tasks} tasks, {style}: ns per pair / Future hand-off",
                        lk, fut, lambda a, b: a / b,
                        "a contended pair = one hand-over + one sleep(0)")
        compare(f"Lock {loop}, 1 task + sleep(0): ns per pair / Future hand-off",
                ("lock", f"ours-{loop}-1-acquire-yield"), fut, lambda a, b: a / b,
                "the sleep(0) alone, uncontended")
        for maxsize, meaning in (("unbounded", "no task switch: put and get cost only"),
                                 ("64", "2 task switches per 64 items"),
                                 ("1", "2 task switches per item")):
            compare(f"Queue throughput {loop} ({maxsize}): ns per item / Future hand-off",
                    ("qthru", f"ours-{loop}-{maxsize}"), fut, lambda a, b: a / b, meaning)

    v = versions()
    lines = [
        f"twinloop vs anchors: {RUNS} round(s), round-robin{' (QUICK: counts /10)' if QUICK else ''}; "
        f"run took {elapsed:.0f} s; {v['date_utc']} UTC",
        "",
        "| workload | system | median | min | max | unit | x REF | x REF best | runs | notes |",
        "|---|---|---:|---:|---:|---|---:|---:|---:|---|",
    ]
    for e in table:
        ours = any(t["w"] == e["w"] and t["key"] == e["key"] and t["ours"] for t in todo)
        name = f"**{e['system']}**" if ours else e["system"]
        if e.get("error") and "median" not in e:
            lines.append(f"| {e['workload']} | {name} | FAILED | | | {e['unit']} | | | | "
                         f"{e['error'][:120]} |")
            continue
        xr = "1 (ref)" if e["ref"] else fmt(e.get("x_ref"))
        xb = "1 (ref)" if e["ref"] else fmt(e.get("x_ref_best"))
        lines.append(f"| {e['workload']} | {name} | {fmt(e['median'])} | {fmt(e['min'])} | "
                     f"{fmt(e['max'])} | {e['unit']} | {xr} | {xb} | {e['n']} | "
                     f"{e.get('note', '')} |")
    lines += ["", "x REF: per round, value / reference (lower-is-better units) or reference / value "
              "(throughputs); median over rounds. 1 = as fast as the reference. x REF best: the "
              "same ratio between the best runs of the two rows (less sensitive to a loaded "
              "machine: noise only ever slows a run down).", ""]
    if targets:
        lines += ["| target | measured (median of per-round ratios) | best vs best | wanted | result "
                  "| notes |",
                  "|---|---:|---:|---|---|---|"]
        for t in targets:
            lines.append(f"| {t['name']} | {fmt(t['value'])} | {fmt(t.get('best_value'))} | "
                         f"{t['want']} | **{t['status']}** | {t['note']} |")
        lines += ["", "result: PASS only when both the median of per-round ratios (the anchors' "
                  "method) and the best-vs-best ratio meet the target (issue 13)."]
    if comparisons:
        lines += ["", "| comparison (no target) | median of per-round ratios | best vs best | meaning "
                  "| notes |", "|---|---:|---:|---|---|"]
        for c in comparisons:
            lines.append(f"| {c['name']} | {fmt(c['value'])} | {fmt(c.get('best_value'))} | "
                         f"{c['meaning']} | {c['note']} |")
    lines += ["", "Versions:", ""] + [f"- {k}: {val}" for k, val in v.items()]
    text = "\n".join(lines)
    print(text)

    os.makedirs(RESULTS, exist_ok=True)
    stamp = datetime.datetime.utcnow().strftime("%Y%m%d-%H%M%S")
    base = os.path.join(RESULTS, f"compare-{stamp}")
    with open(base + ".md", "w") as f:
        f.write(text + "\n")
    with open(base + ".json", "w") as f:
        json.dump(dict(versions=v, runs=RUNS, quick=QUICK, elapsed_s=elapsed, table=table,
                       targets=targets, comparisons=comparisons), f, indent=1)
    print(f"\nsaved {base}.md and .json", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
