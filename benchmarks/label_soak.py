"""Soak test of the labelling server: many annotators at once, leases expiring, a SIGKILL
and a restart in the middle; then check that nothing was lost or doubled.

A real ``rlhf-envs label`` process (access control on, short leases) serves ``--pairs``
stored comparisons (a quarter want two labels). ``--clients`` annotators, each with their
own invitation token, loop: ask for a pair, think for a few milliseconds, and label it,
except that ``--abandon`` of the pairs are dropped unlabelled (their lease must expire and
return them to the pool). When half the labels are in, the server is killed with SIGKILL
and started again on the same database and port; clients retry what failed with the same
label id (a resend is harmless). It stops when every pair has its labels.

Checks: every label the server acknowledged is stored; no label id twice; no annotator
labels a pair twice; every pair holds exactly the labels it wants. Reports requests,
p50/p99 latency and the server's memory (RSS) after warm-up and at the end.

    python benchmarks/label_soak.py                  # 8 clients, about 20,000 requests
    python benchmarks/label_soak.py --pairs 300 --clients 4   # a short run
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from rlhf_envs.feedback.store import FeedbackStore


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(db: Path, port: int, lease: float) -> subprocess.Popen:
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "rlhf_envs.cli", "label", "--db", str(db)),
            *("--port", str(port), "--env", "RLHF-Tiny-v0", "--pairs", "random"),
            *("--lease", str(lease), "--overlap", "0"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 120
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/config", timeout=2).read()
            return proc
        except OSError:
            if proc.poll() is not None or time.time() > deadline:
                raise RuntimeError("the label server did not start") from None
            time.sleep(0.2)


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class Client(threading.Thread):
    """One annotator: next pair, think, label (or abandon), again; retries on failures."""

    def __init__(self, soak: Soak, token: str, seed: int):
        super().__init__(daemon=True)
        self.soak, self.token, self.rng = soak, token, random.Random(seed)
        self.conn: http.client.HTTPConnection | None = None

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """Status and JSON answer; (0, None) when the server is down (retry later)."""
        started = time.perf_counter()
        try:
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.soak.port, timeout=30)
            payload = None if body is None else json.dumps(body)
            headers = {"Authorization": f"Bearer {self.token}"}
            if payload is not None:
                headers["Content-Type"] = "application/json"
            self.conn.request(method, path, payload, headers)
            response = self.conn.getresponse()
            data = json.loads(response.read() or b"null")
        except (OSError, http.client.HTTPException, ValueError):
            if self.conn is not None:
                self.conn.close()
            self.conn = None
            self.soak.note_failure()
            time.sleep(0.05)
            return 0, None
        self.soak.note(time.perf_counter() - started)
        return response.status, data

    def run(self) -> None:
        while not self.soak.done.is_set():
            status, item = self.request("GET", "/api/next")
            if status != 200:
                continue
            time.sleep(self.rng.uniform(0.0, self.soak.think))
            if self.rng.random() < self.soak.abandon:
                continue  # left unlabelled: the lease must expire
            body = {
                "label_id": item["label_id"],
                "comparison_id": item["comparison_id"],
                "choice": self.rng.choice("ab"),
            }
            while not self.soak.done.is_set():
                status, answer = self.request("POST", "/api/labels", body)
                if status in (200, 201):
                    self.soak.acknowledge(body["label_id"])
                    break
                if status == 409:  # the pair went to someone else after our lease expired
                    self.soak.note_conflict()
                    break
                if status != 0:
                    raise RuntimeError(f"unexpected answer {status}: {answer}")


class Soak:
    def __init__(self, port: int, think: float, abandon: float):
        self.port, self.think, self.abandon = port, think, abandon
        self.lock = threading.Lock()
        self.latencies: list[float] = []
        self.acknowledged: set[str] = set()
        self.failures = self.conflicts = 0
        self.done = threading.Event()

    def note(self, seconds: float) -> None:
        with self.lock:
            self.latencies.append(seconds)

    def note_failure(self) -> None:
        with self.lock:
            self.failures += 1

    def note_conflict(self) -> None:
        with self.lock:
            self.conflicts += 1

    def acknowledge(self, label_id: str) -> None:
        with self.lock:
            self.acknowledged.add(label_id)


def run(args: argparse.Namespace) -> dict[str, Any]:
    folder = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="label-soak-"))
    folder.mkdir(parents=True, exist_ok=True)
    db = folder / "soak.sqlite"
    db.unlink(missing_ok=True)
    with FeedbackStore(db) as store:
        wanted = {}
        for n in range(args.pairs):
            want = 2 if n % 4 == 0 else 1
            cid = store.add_comparison(
                f"User: question {n}",
                f"first reply {n}",
                f"second reply {n}",
                source="soak",
                wanted_labels=want,
            )
            wanted[cid] = want
        tokens = [store.invite(f"annotator {k}")[1] for k in range(args.clients)]
    total = sum(wanted.values())
    port = _free_port()
    proc = _start(db, port, args.lease)
    soak = Soak(port, args.think, args.abandon)
    clients = [Client(soak, token, seed) for seed, token in enumerate(tokens)]
    started = time.perf_counter()
    for c in clients:
        c.start()
    time.sleep(1.0)
    rss_start = _rss_mb(proc.pid)
    killed = False
    deadline = time.time() + args.max_seconds
    with FeedbackStore(db) as store:
        while time.time() < deadline:
            time.sleep(0.2)
            labels = store.counts()["labels"]
            if not killed and labels >= total // 2:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
                proc = _start(db, port, args.lease)
                killed = True
            if labels >= total:
                break
    rss_end = _rss_mb(proc.pid)
    soak.done.set()
    for c in clients:
        c.join(timeout=60)
    seconds = time.perf_counter() - started
    proc.terminate()
    proc.wait(timeout=30)
    with FeedbackStore(db) as store:
        rows = store.labels()
        integrity = store.integrity_check()
    ids = [r["label_id"] for r in rows]
    per_pair: dict[int, int] = {}
    for r in rows:
        per_pair[r["comparison_id"]] = per_pair.get(r["comparison_id"], 0) + 1
    per_annotator_pair = {(r["comparison_id"], r["annotator_id"]) for r in rows}
    lat = sorted(soak.latencies)
    result = {
        "pairs": args.pairs,
        "clients": args.clients,
        "requests": len(lat) + soak.failures,
        "answered": len(lat),
        "failed_while_down": soak.failures,
        "late_labels_refused": soak.conflicts,
        "labels": sum(per_pair.get(c, 0) for c in wanted),
        "labels_wanted": total,
        "labels_on_pairs_drawn_later": len(rows) - sum(per_pair.get(c, 0) for c in wanted),
        "lost": len(soak.acknowledged - set(ids)),
        "doubled": len(ids) - len(set(ids)) + len(rows) - len(per_annotator_pair),
        "pairs_off_wanted": sum(per_pair.get(c, 0) != w for c, w in wanted.items()),
        "killed_and_restarted": killed,
        "integrity": integrity,
        "seconds": round(seconds, 1),
        "p50_ms": round(1000 * lat[len(lat) // 2], 2) if lat else None,
        "p99_ms": round(1000 * lat[int(len(lat) * 0.99)], 2) if lat else None,
        "rss_mb_start": round(rss_start, 1),
        "rss_mb_end": round(rss_end, 1),
    }
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=6000, help="stored comparisons to label")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--lease", type=float, default=2.0, help="server --lease, seconds")
    parser.add_argument("--think", type=float, default=0.005, help="max think time, seconds")
    parser.add_argument("--abandon", type=float, default=0.05, help="share of pairs dropped")
    parser.add_argument("--max-seconds", type=float, default=1800)
    parser.add_argument("--out", help="folder for the database (default: a temporary one)")
    args = parser.parse_args(argv)
    result = run(args)
    print(json.dumps(result))
    ok = (
        result["lost"] == 0
        and result["doubled"] == 0
        and result["pairs_off_wanted"] == 0
        and result["integrity"] == "ok"
        and result["killed_and_restarted"]
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
