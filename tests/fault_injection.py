"""Kill an audit with SIGKILL at chosen points, resume it each time, and compare the result with an uninterrupted
run of the same seed. Used by tests/test_reliability.py on the tiny organism; on any target from the shell:

    python tests/fault_injection.py --target rm_sycophancy --out /tmp/fi --kills 10 --seed 0
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

Events = list[dict]
SLEUTH = str(Path(sys.executable).with_name("sleuth"))


def read(run: Path) -> Events:
    """The complete lines of a run's transcript (a torn last line is what a kill leaves; it is not an event yet)."""
    p = run / "transcript.jsonl"
    if not p.exists():
        return []
    out = []
    for line in p.read_bytes().split(b"\n"):
        try:
            out.append(json.loads(line))
        except ValueError:
            break
    return out


def run_until(args: list[str], run: Path, stop: Callable[[Events], bool], timeout: float) -> bool:
    """Run `sleuth args`, SIGKILL it as soon as `stop(events)` holds; False when it ended by itself first."""
    proc = subprocess.Popen([SLEUTH, *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    t0 = time.monotonic()
    try:
        while proc.poll() is None:
            if stop(read(run)):
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                return True
            if time.monotonic() - t0 > timeout:
                raise TimeoutError(f"sleuth {' '.join(args)} ran past {timeout} s")
            time.sleep(0.02)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if proc.returncode != 0:
        raise RuntimeError(f"sleuth {' '.join(args)} exited {proc.returncode}")
    return False


def at_event(n: int) -> Callable[[Events], bool]:
    return lambda evs: len(evs) >= n


def a_batch_point(evs: Events) -> int:
    """An event count that falls inside a batch: just after the first answer of a turn that asked for two or more
    samplings (each takes a while, so the kill lands before the rest are answered), the one nearest the middle."""
    slow = {"chat", "prefill", "raw_sample", "sample_user_turn"}
    points = []
    for e in evs:
        if e["type"] == "auditor_message" and e["role"] == "assistant":
            asked = [b["id"] for b in e["content"] if b.get("type") == "tool_use" and b.get("name") in slow]
            first = next((r["seq"] for r in evs[e["seq"]:] if r["type"] == "tool_result" and r["id"] in asked), None)
            if len(asked) >= 2 and first is not None:
                points.append(first + 1)
    if not points:
        raise ValueError("the reference run has no turn with two or more samplings")
    return min(points, key=lambda p: abs(p - len(evs) / 2))


def at_the_report(evs: Events) -> bool:
    return any(e["type"] in ("report", "run_end") for e in evs)


def check(run: Path) -> Events:
    """The transcript is one run: seq 0..N-1, each tool call answered exactly once, one run_end."""
    evs = read(run)
    assert [e["seq"] for e in evs] == list(range(len(evs))), "seq numbers have gaps or repeats"
    calls = [e["id"] for e in evs if e["type"] == "tool_call"]
    results = [e["id"] for e in evs if e["type"] == "tool_result"]
    assert len(calls) == len(set(calls)), "a tool call was recorded twice"
    assert sorted(calls) == sorted(results), "a tool call has no result, or two"
    assert sum(e["type"] == "run_end" and e["reason"] != "interrupted" for e in evs) == 1
    return evs


def inject(target: str, out: Path, *, kills: int, seed: int, toolset: str = "all", timeout: float = 3600,
           reference: Path | None = None) -> dict:
    """An uninterrupted run in OUT/reference (or an earlier one of the same audit: `reference`), then one killed
    `kills` times in OUT/killed; returns what matched."""
    base = ["audit", "--target", target, "--toolset", toolset, "--seed", str(seed), "--quiet"]
    ref, run = reference or out / "reference", out / "killed"
    if reference is None:
        run_until([*base, "--out", str(ref)], ref, lambda _: False, timeout)
    evs = read(ref)
    n = len(evs)
    rng = random.Random(seed)
    batch = a_batch_point(evs)
    points = sorted([*rng.sample([p for p in range(3, n - 3) if p != batch], kills - 2), batch])
    stops: list[tuple[str, Callable[[Events], bool]]] = [
        ("inside a batch" if p == batch else f"event {p}", at_event(p)) for p in points]
    stops.append(("at the report", at_the_report))
    killed_at = []
    args = [*base, "--out", str(run)]
    for what, stop in stops:
        start = len(read(run))  # each resume writes something before its kill, or the kill tests nothing

        def after_start(evs: Events, stop: Callable[[Events], bool] = stop, start: int = start) -> bool:
            return len(evs) > start + 1 and stop(evs)

        if run_until(args, run, after_start, timeout):
            killed_at.append((what, len(read(run))))
        args = ["audit", "--resume", str(run), "--quiet"]
        if (run / "score.json").exists():
            break
    if not (run / "score.json").exists():
        run_until(args, run, lambda _: False, timeout)
    evs = check(run)
    same = (ref / "report.json").read_bytes() == (run / "report.json").read_bytes()
    return {"events_reference": n, "events_killed_run": len(evs), "kills": killed_at, "same_report": same,
            "resumes": sum(e["type"] == "note" and e.get("kind") == "resume" for e in evs),
            "score_reference": json.loads((ref / "score.json").read_text())["win"],
            "score_killed_run": json.loads((run / "score.json").read_text())["win"]}


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--target", default="rm_sycophancy")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--kills", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--toolset", default="all")
    ap.add_argument("--reference", type=Path, help="a finished run of the same audit, instead of running one")
    a = ap.parse_args()
    print(json.dumps(inject(a.target, a.out, kills=a.kills, seed=a.seed, toolset=a.toolset, reference=a.reference),
                     indent=2))
