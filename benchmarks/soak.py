"""Soak: a registry-backed ``capsule serve --workers 2`` under steady load, with faults, for N minutes.

    python -m benchmarks.soak                    # 10 minutes, c=32, writes docs/benchmarks-soak.md
    python -m benchmarks.soak --minutes 1 --out /tmp/soak.md

What it does, all against real processes on 127.0.0.1:
- an embedded registry in a temporary directory holds model ``m`` (a small linear model whose version N
  predicts N·x, so every answer says which version served it) with alias ``champion``;
- ``capsule serve models:/m@champion --workers 2`` follows it;
- ``--concurrency`` client threads (default 32) post one-row TF Serving requests back to back;
- every ``--alias-every`` seconds (30) the alias moves to another registered version;
- every ``--kill-every`` seconds (60) one worker gets SIGKILL (the supervisor replaces it);
- a registering thread adds a new version every ``--register-every`` seconds (20).

It reports failed requests (a request that was in flight when a worker was killed may fail: it is
listed apart; every other failure counts), the p99 latency per window, and RSS and open file
descriptors of the server process and of the workers at start (after warm-up) and at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import requests

from benchmarks.serving.core import ROOT, child_env, free_port, process_tree

X = np.arange(6.0).reshape(-1, 1)
KILL_GRACE = 1.0
"""A connection-level failure that began at most this long after a kill is counted as the killed worker's."""
_CONNECTION_ERRORS = frozenset({"ConnectionError", "ChunkedEncodingError"})


@dataclass
class Sample:
    start: float
    end: float
    ok: bool
    error: str = ""


@dataclass
class Usage:
    rss_kib: int
    fds: int


@dataclass
class SoakResult:
    seconds: float
    concurrency: int
    requests: int
    failed: list[Sample]
    excused: list[Sample]
    kills: list[float]
    alias_moves: int
    registered: int
    p99_by_window: list[tuple[float, float, int]]
    start_usage: dict[str, Usage]
    end_usage: dict[str, Usage]
    window: float = 30.0
    notes: list[str] = field(default_factory=list)

    @property
    def growth(self) -> dict[str, tuple[float, float]]:
        """RSS and fd growth of the server process and of the workers (their mean), end over start."""
        out: dict[str, tuple[float, float]] = {}
        for role in ("server", "workers"):
            start, end = _role(self.start_usage, role), _role(self.end_usage, role)
            if start is not None and end is not None:
                out[role] = (end.rss_kib / start.rss_kib - 1, end.fds / start.fds - 1)
        return out


def _role(usage: dict[str, Usage], role: str) -> Usage | None:
    values = [u for name, u in usage.items() if (name == "server") == (role == "server")]
    if not values:
        return None
    return Usage(int(np.mean([u.rss_kib for u in values])), round(np.mean([u.fds for u in values])))


def usage_of(pid: int) -> Usage | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except (FileNotFoundError, ProcessLookupError):
        return None
    rss = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:"))
    return Usage(rss, fds)


def usage(server_pid: int) -> dict[str, Usage]:
    out: dict[str, Usage] = {}
    for pid in process_tree(server_pid):
        found = usage_of(pid)
        if found is not None:
            out["server" if pid == server_pid else f"worker {pid}"] = found
    return out


def workers(server_pid: int) -> list[int]:
    return [p for p in process_tree(server_pid) if p != server_pid]


def version_capsule(root: Path, version: int) -> Path:
    from sklearn.linear_model import LinearRegression

    import modelcapsule as mc

    path = root / f"m-{version}.capsule"
    mc.save(LinearRegression().fit(X, version * X[:, 0]), path, sample=X, name="m", source=False,
            overwrite=True)
    return path


def run(minutes: float = 10.0, *, concurrency: int = 32, alias_every: float = 30.0, kill_every: float = 60.0,
        register_every: float = 20.0, warmup: float = 5.0, window: float = 30.0,
        progress: Callable[[str], None] = print) -> SoakResult:
    """Run the soak and return what it measured (see the module docstring)."""
    from modelcapsule.registry import Registry

    work = Path(tempfile.mkdtemp(prefix="capsule-soak-"))
    registry_dir = work / "registry"
    with Registry(registry_dir) as registry:
        for version in (1, 2):
            registry.register("m", version_capsule(work, version))
        registry.set_alias("m", "champion", 1, reason="soak start")
    port, grpc_port = free_port(), free_port()
    log = open(work / "server.log", "wb")  # noqa: SIM115 - closed at the end
    server = subprocess.Popen(
        [sys.executable, "-m", "modelcapsule", "serve", "models:/m@champion", "--registry", str(registry_dir),
         "--workers", "2", "--poll-seconds", "0.5", "--port", str(port), "--grpc-port", str(grpc_port),
         "--no-access-log", "--max-restarts", "1000"],
        env=child_env(), stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}/v1/models/m:predict"
    deadline = time.monotonic() + 120
    while True:
        with contextlib.suppress(requests.RequestException):
            if requests.post(url, json={"instances": [[1.0]]}, timeout=5).status_code == 200:
                break
        if server.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the server did not start: see {work / 'server.log'}")
        time.sleep(0.2)
    progress(f"server {server.pid} ready on :{port}; soaking {minutes:g} min at c={concurrency}")

    stop = threading.Event()
    samples: list[list[Sample]] = [[] for _ in range(concurrency)]
    kills: list[float] = []
    notes: list[str] = []
    moves = registered = 0

    def client(i: int) -> None:
        mine = samples[i]
        with requests.Session() as session:
            while not stop.is_set():
                began = time.monotonic()
                try:
                    answer = session.post(url, json={"instances": [[1.0]]}, timeout=30)
                    ok, error = answer.status_code == 200, "" if answer.status_code == 200 else answer.text[:200]
                except requests.RequestException as exc:
                    ok, error = False, type(exc).__name__
                mine.append(Sample(began, time.monotonic(), ok, error))

    def register() -> None:
        nonlocal registered
        version = 3
        while not stop.wait(register_every):
            try:
                with Registry(registry_dir) as reg:
                    reg.register("m", version_capsule(work, version))
                registered += 1
                version += 1
            except Exception as exc:  # a soak reports what went wrong instead of stopping
                notes.append(f"registering version {version} failed: {exc}")

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(concurrency)]
    threads.append(threading.Thread(target=register, daemon=True))
    begin = time.monotonic()
    for t in threads:
        t.start()
    time.sleep(warmup)
    start_usage = usage(server.pid)
    rng = np.random.default_rng(0)
    next_alias, next_kill = begin + alias_every, begin + kill_every
    end = begin + minutes * 60
    while time.monotonic() < end:
        now = time.monotonic()
        if now >= next_alias:
            with Registry(registry_dir) as reg:
                target = int(rng.choice([v.version for v in reg.versions("m")]))
                reg.set_alias("m", "champion", target, reason="soak")
            moves += 1
            next_alias += alias_every
            progress(f"{now - begin:6.1f} s  alias champion -> {target}")
        if now >= next_kill:
            alive = workers(server.pid)
            if alive:
                victim = alive[int(rng.integers(len(alive)))]
                kills.append(time.monotonic())
                with contextlib.suppress(ProcessLookupError):
                    os.kill(victim, signal.SIGKILL)
                progress(f"{now - begin:6.1f} s  SIGKILL worker {victim}")
            next_kill += kill_every
        time.sleep(0.05)
    end_usage = usage(server.pid)
    stop.set()
    for t in threads:
        t.join(60)
    server.send_signal(signal.SIGTERM)
    try:
        server.wait(60)
    except subprocess.TimeoutExpired:
        server.kill()
        notes.append("the server did not stop within 60 s of SIGTERM")
    log.close()

    every = sorted((s for part in samples for s in part), key=lambda s: s.start)
    failed = [s for s in every if not s.ok]
    # a killed worker takes its connections with it: a request in flight on one, or sent on one of its
    # kept-alive connections just after the kill (before the client saw it close), fails at the connection
    # level; an HTTP answer that is an error is never excused
    excused = [s for s in failed if s.error in _CONNECTION_ERRORS
               and any(s.start - KILL_GRACE <= k <= s.end for k in kills)]
    counted = [s for s in failed if s not in excused]
    p99: list[tuple[float, float, int]] = []
    t0 = begin
    while t0 < end:
        lat = [1000 * (s.end - s.start) for s in every if t0 <= s.start < t0 + window and s.ok]
        if lat:
            p99.append((t0 - begin, float(np.percentile(lat, 99)), len(lat)))
        t0 += window
    return SoakResult(end - begin, concurrency, len(every), counted, excused, [k - begin for k in kills], moves,
                      registered, p99, start_usage, end_usage, window, notes)


def render(result: SoakResult, when: str) -> str:
    lines = [
        "# Soak: `capsule serve models:/m@champion --workers 2` under load and faults",
        "",
        f"Measured {when} by `python -m benchmarks.soak` on this machine (2 cores, shared with other work).",
        f"{result.seconds / 60:.1f} minutes at c={result.concurrency} one-row TF Serving requests against an "
        f"embedded registry; alias moved {result.alias_moves} times, {len(result.kills)} workers SIGKILLed "
        f"(at {', '.join(f'{k:.0f} s' for k in result.kills) or 'none'}), {result.registered} versions "
        "registered meanwhile.",
        "",
        "| requests | failed (counted) | lost with a killed worker's connections (excused) |",
        "|---|---|---|",
        f"| {result.requests:,} | {len(result.failed)} | {len(result.excused)} |",
        "",
        "| window (s) | requests | p99 (ms) |",
        "|---|---|---|",
        *[f"| {t:.0f}–{t + result.window:.0f} | {n:,} | {p:.1f} |" for t, p, n in result.p99_by_window],
        "",
        "| process | RSS start (MiB) | RSS end (MiB) | fds start | fds end |",
        "|---|---|---|---|---|",
    ]
    for role in ("server", "workers"):
        start, end = _role(result.start_usage, role), _role(result.end_usage, role)
        if start and end:
            label = "server (supervisor)" if role == "server" else "workers (mean per worker)"
            lines.append(f"| {label} | {start.rss_kib / 1024:.1f} | {end.rss_kib / 1024:.1f} | {start.fds} | "
                         f"{end.fds} |")
    lines += ["", "Growth, end over start: " + "; ".join(
        f"{role} RSS {g[0]:+.1%}, fds {g[1]:+.1%}" for role, g in result.growth.items()) + "."]
    lines += ["", "Excused: connection-level failures (no HTTP answer) of requests in flight on a worker when it "
              "was killed, or sent on one of its kept-alive connections within 1 s after the kill, before the "
              "client saw the connection close. Any HTTP error answer counts. Workers that were killed are "
              "replaced by new ones: the worker rows compare the workers alive at start with those alive at "
              "the end (mean per worker)."]
    if result.failed:
        lines += ["", "Counted failures (first 10):", ""]
        lines += [f"- {f.error}" for f in result.failed[:10]]
    for note in result.notes:
        lines += ["", f"Note: {note}"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--alias-every", type=float, default=30.0)
    parser.add_argument("--kill-every", type=float, default=60.0)
    parser.add_argument("--register-every", type=float, default=20.0)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks-soak.md")
    args = parser.parse_args(argv)
    result = run(args.minutes, concurrency=args.concurrency, alias_every=args.alias_every,
                 kill_every=args.kill_every, register_every=args.register_every)
    text = render(result, time.strftime("%Y-%m-%d", time.gmtime()))
    args.out.write_text(text)
    print(text)
    worst = max((max(g) for g in result.growth.values()), default=0.0)
    return 0 if not result.failed and worst <= 0.05 else 1


if __name__ == "__main__":
    raise SystemExit(main())
