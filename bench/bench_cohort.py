"""Benchmark the synthetic population generator: wall time, people per second and peak memory.

Run by hand (not a test):  .venv/bin/python bench/bench_cohort.py [--sizes 100000 360000 1000000]
Each size runs in a fresh process writing Parquet to a temporary folder; peak memory is the largest
sum of resident memory over that process and its worker processes (sampled from /proc every 0.1 s).
The calibration cache is warmed first so it is not counted.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

RUN = """
import json, sys
from synthetic_cohort.generate import write_population
rows = write_population(sys.argv[1], int(sys.argv[2]), 42, sys.argv[3], workers=int(sys.argv[4]) or None)
print(json.dumps({"rows": rows}))
"""


def _tree_rss_kb(root: int) -> int:
    """Resident memory of ``root`` and all its descendants, in kB (Linux /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
                children.setdefault(int(fields[1]), []).append(int(entry))
            except OSError:
                continue
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        stack.extend(children.get(pid, []))
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total


def run_once(folder: str, size: int, profile: str, workers: int) -> tuple[float, int, dict]:
    start = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-c", RUN, folder, str(size), profile, str(workers)],
                               stdout=subprocess.PIPE, text=True)
    peak = 0
    while process.poll() is None:
        peak = max(peak, _tree_rss_kb(process.pid))
        time.sleep(0.1)
    wall = time.perf_counter() - start
    output = process.stdout.read()
    if process.returncode:
        raise SystemExit(f"generation of {size} people failed")
    return wall, peak, json.loads(output.strip().splitlines()[-1])["rows"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 360_000, 1_000_000])
    parser.add_argument("--profile", default="england")
    parser.add_argument("--workers", type=int, default=0, help="0 = all cores")
    args = parser.parse_args()
    subprocess.run([sys.executable, "-c", f"from synthetic_cohort.simulate import calibrated_story; calibrated_story({args.profile!r})"], check=True)
    print(f"{'people':>10} {'wall s':>8} {'people/s':>10} {'peak RSS MB':>12} {'patients':>10} {'encounters':>12} {'MB on disk':>11}")
    for size in args.sizes:
        with tempfile.TemporaryDirectory() as folder:
            wall, peak_kb, rows = run_once(folder, size, args.profile, args.workers)
            disk = sum(p.stat().st_size for p in Path(folder).glob("*")) / 1e6
            print(f"{size:>10,} {wall:>8.1f} {size / wall:>10,.0f} {peak_kb / 1024:>12,.0f} {rows['patients']:>10,} "
                  f"{rows['encounters']:>12,} {disk:>11,.0f}", flush=True)


if __name__ == "__main__":
    main()
