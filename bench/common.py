"""The one helper every bench script uses: sizes, timing, peak memory, tables, cached inputs.

A bench script defines ``run_size(people, args) -> list[Measurement]`` and calls
``main(description, run_size)``. By default each size runs in a fresh child process (the
script re-invokes itself with ``--in-process``) so the peak memory printed for a size is that
size's alone, not left over from a smaller one. Results print as a table and are saved as JSON
under ``bench/out/`` (gitignored) for docs/performance.md and the growth exponents.

Generated inputs (records, features, models) are cached under ``bench/out/`` by size and seed,
so the scoring bench does not regenerate a million people each time.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import psutil

REPO = Path(__file__).resolve().parent.parent
os.environ.setdefault("PROACTIVE_CARE_MODE", "demo")  # the benches load and sign in as the demo users
OUT = REPO / "bench" / "out"
DEFAULT_SIZES = (100_000, 360_000, 1_000_000)
DEFAULT_SEED = 42
# The Makefile's dates: records cover 2022-2025, train at 2024-01-01, score at 2026-01-01.
TRAIN_DATE = "2024-01-01"
SCORE_DATE = "2026-01-01"
GIB = 1024**3


@dataclass
class Measurement:
    """One timed step at one population size."""

    step: str
    people: int
    seconds: float = math.nan
    cpu_seconds: float = math.nan  # user + system CPU of this process and its children
    peak_rss_bytes: int = 0
    rows: int | None = None  # rows processed when not one per person (e.g. people explained)
    note: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def rows_per_second(self) -> float:
        rows = self.people if self.rows is None else self.rows
        return rows / self.seconds if self.seconds > 0 else math.nan


class PeakMemorySampler:
    """Samples this process tree (pools, Dask workers) in a thread: peak resident memory and CPU.

    ``ru_maxrss`` only knows the peak since the process started and misses children still
    running, so a sampler is what gives a per-step figure. CPU time is kept per process at its
    last sample, so a child that ends mid-step still counts. On a shared machine CPU seconds
    say what a step costs when wall time is stretched by other people's work.
    """

    def __init__(self, interval: float = 0.02):
        self.interval = interval
        self.peak = 0
        self._process = psutil.Process(os.getpid())
        self._cpu_first: dict[int, float] = {}
        self._cpu_last: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        rss = 0
        for member in [self._process, *self._process.children(recursive=True)]:
            try:
                with member.oneshot():
                    rss += member.memory_info().rss
                    times = member.cpu_times()
            except psutil.Error:  # a child ended between listing and reading
                continue
            self._cpu_first.setdefault(member.pid, 0.0 if self._cpu_first else times.user + times.system)
            self._cpu_last[member.pid] = times.user + times.system
        self.peak = max(self.peak, rss)

    @property
    def cpu_seconds(self) -> float:
        return sum(last - self._cpu_first.get(pid, 0.0) for pid, last in self._cpu_last.items())

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakMemorySampler:
        me = self._process.cpu_times()
        self._cpu_first[self._process.pid] = me.user + me.system
        for child in self._process.children(recursive=True):
            try:
                times = child.cpu_times()
            except psutil.Error:
                continue
            self._cpu_first[child.pid] = times.user + times.system
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()


@contextmanager
def measure(step: str, people: int, rows: int | None = None, note: str = "") -> Iterator[Measurement]:
    """Time a block and sample its peak memory; the yielded Measurement is filled on exit.

    ``rows`` may also be set on the measurement inside the block once it is known.
    """
    measurement = Measurement(step=step, people=people, rows=rows, note=note)
    with PeakMemorySampler() as sampler:
        start = time.perf_counter()
        yield measurement
        measurement.seconds = time.perf_counter() - start
    measurement.peak_rss_bytes = sampler.peak
    measurement.cpu_seconds = sampler.cpu_seconds
    print(
        f"  {step} @ {people:,}: {measurement.seconds:.2f} s ({measurement.cpu_seconds:.2f} CPU s), "
        f"peak {measurement.peak_rss_bytes / GIB:.2f} GiB",
        file=sys.stderr,
        flush=True,
    )


def format_table(measurements: list[Measurement], title: str = "") -> str:
    """A plain-text table: step, people, rows, wall time, rows per second, peak memory."""
    header = ("step", "people", "rows", "wall s", "CPU s", "rows/s", "peak GiB", "note")
    lines = [
        (
            m.step,
            f"{m.people:,}",
            f"{m.people if m.rows is None else m.rows:,}",
            f"{m.seconds:.2f}",
            f"{m.cpu_seconds:.2f}",
            f"{m.rows_per_second:,.0f}",
            f"{m.peak_rss_bytes / GIB:.2f}",
            m.note,
        )
        for m in measurements
    ]
    widths = [max(len(str(row[i])) for row in [header, *lines]) for i in range(len(header))]

    def render(row) -> str:
        cells = [
            str(cell).ljust(width) if i in (0, 7) else str(cell).rjust(width)
            for i, (cell, width) in enumerate(zip(row, widths))
        ]
        return "  ".join(cells).rstrip()

    rule = "  ".join("-" * w for w in widths)
    body = [render(header), rule, *(render(row) for row in lines)]
    return "\n".join(([title] if title else []) + body)


def growth_exponents(measurements: list[Measurement], field: str = "seconds") -> dict[str, float]:
    """Per step, the slope of log(time) against log(people): 1.0 is linear growth.

    ``field`` "seconds" (wall) or "cpu_seconds" (steadier when others load the machine).
    """
    by_step: dict[str, list[Measurement]] = {}
    for m in measurements:
        by_step.setdefault(m.step, []).append(m)
    exponents = {}
    for step, rows in by_step.items():
        sizes = np.array([m.people for m in rows], dtype=float)
        seconds = np.array([getattr(m, field) for m in rows], dtype=float)
        if len(set(sizes)) >= 2 and np.all(seconds > 0):
            exponents[step] = float(np.polyfit(np.log(sizes), np.log(seconds), 1)[0])
    return exponents


def format_exponents(measurements: list[Measurement]) -> str:
    wall = growth_exponents(measurements)
    cpu = growth_exponents(measurements, "cpu_seconds")
    if not wall:
        return ""
    lines = ["growth exponent (slope of log time vs log people): wall, CPU"]
    lines += [f"  {step}: {value:.2f}, {cpu.get(step, float('nan')):.2f}" for step, value in wall.items()]
    return "\n".join(lines)


def parse_sizes(text: str) -> list[int]:
    try:
        sizes = [int(part.replace("_", "")) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--sizes {text!r} is not a comma-separated list of whole numbers."
        ) from None
    if not sizes or min(sizes) <= 0:
        raise argparse.ArgumentTypeError(f"--sizes {text!r} must list positive numbers of people.")
    return sizes


def build_parser(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--sizes",
        type=parse_sizes,
        default=list(DEFAULT_SIZES),
        help="comma-separated population sizes (default 100000,360000,1000000)",
    )
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument(
        "--in-process",
        action="store_true",
        help="run every size in this process (peak memory then carries over between sizes)",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="profile each size with pyinstrument (pip install '.[bench]'); text profile to bench/out/profiles/",
    )
    parser.add_argument("--json", type=Path, help=argparse.SUPPRESS)  # child -> parent results
    return parser


def _run_child(script: Path, argv: list[str], size: int) -> list[Measurement]:
    """Run one size in a fresh interpreter and read back its measurements."""
    with tempfile.TemporaryDirectory() as tmp:
        result_file = Path(tmp) / "result.json"
        sized_argv = _replace_sizes(argv, size) + ["--in-process", "--json", str(result_file)]
        subprocess.run([sys.executable, str(script), *sized_argv], check=True)
        return [Measurement(**row) for row in json.loads(result_file.read_text())]


def _replace_sizes(argv: list[str], size: int) -> list[str]:
    kept: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg == "--sizes":
            skip = True
            continue
        if arg.startswith("--sizes="):
            continue
        kept.append(arg)
    return kept + ["--sizes", str(size)]


def main(
    description: str,
    run_size: Callable[[int, argparse.Namespace], list[Measurement]],
    parser: argparse.ArgumentParser | None = None,
    argv: list[str] | None = None,
) -> list[Measurement]:
    """Parse the common options, run each size, print the table and exponents, save JSON."""
    parser = parser or build_parser(description)
    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(argv)
    script = Path(sys.argv[0]).resolve()
    measurements: list[Measurement] = []
    for size in args.sizes:
        if args.in_process:
            measurements += _profiled(run_size, size, args, script.stem) if args.profile else run_size(size, args)
        else:
            measurements += _run_child(script, argv, size)
    if args.json:  # a child: hand results to the parent, which prints
        args.json.write_text(json.dumps([asdict(m) for m in measurements]))
        return measurements
    print()
    print(format_table(measurements, title=f"{script.stem}: {description}"))
    exponents = format_exponents(measurements)
    if exponents:
        print()
        print(exponents)
    save_results(script.stem, measurements)
    return measurements


def _profiled(run_size, size: int, args, name: str) -> list[Measurement]:
    """Run one size under pyinstrument (a sampling profiler: wall time, little overhead)."""
    from pyinstrument import Profiler

    profiler = Profiler(interval=0.005)
    with profiler:
        measurements = run_size(size, args)
    path = OUT / "profiles" / f"{name}_{size}.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(profiler.output_text(unicode=False, color=False, show_all=False))
    profiler.write_html(path.with_suffix(".html"))
    print(f"  profile: {path.relative_to(REPO)} (and .html)", file=sys.stderr)
    return measurements


def save_results(name: str, measurements: list[Measurement]) -> Path:
    """Merge into ``bench/out/<name>.json``: a step at a size replaces its earlier figure, other
    sizes are kept, so sizes run at different times still give one table and one exponent."""
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"{name}.json"
    when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    rows = {}
    if path.exists():
        for row in json.loads(path.read_text()).get("measurements", []):
            rows[(row["step"], row["people"])] = row
    for m in measurements:
        rows[(m.step, m.people)] = asdict(m) | {
            "rows_per_second": m.rows_per_second, "when": when, "load_average": os.getloadavg()[0],
        }
    merged = sorted(rows.values(), key=lambda row: (row["people"], list(rows).index((row["step"], row["people"]))))
    payload = {
        "script": name,
        "cpus": os.cpu_count(),
        "measurements": merged,
        "growth_exponents": growth_exponents(load_measurements(merged)),
        "growth_exponents_cpu": growth_exponents(load_measurements(merged), "cpu_seconds"),
    }
    path.write_text(json.dumps(payload, indent=2))
    print(f"\nsaved {path.relative_to(REPO)}", file=sys.stderr)
    return path


def load_measurements(rows: list[dict]) -> list[Measurement]:
    fields = set(Measurement.__dataclass_fields__)
    return [Measurement(**{k: v for k, v in row.items() if k in fields}) for row in rows]


# --- cached inputs (built once per size and seed through the public CLI) -------------------------

PROACTIVE_CARE = [sys.executable, "-m", "app.cli"]


def _run_cli(*arguments: str) -> None:
    subprocess.run([*PROACTIVE_CARE, *arguments], check=True, cwd=REPO)


def records_dir(people: int, seed: int = DEFAULT_SEED) -> Path:
    """A generated population of ``people`` (made with `proactive-care cohort` if not cached)."""
    path = OUT / "inputs" / f"records_{people}_{seed}"
    if not (path / "patients.parquet").exists():
        print(f"  generating {people:,} people into {path} (cached for next time)", file=sys.stderr)
        _run_cli("cohort", "--patients", str(people), "--seed", str(seed), "--out", str(path))
    return path


def model_dir(people: int = DEFAULT_SIZES[0], seed: int = DEFAULT_SEED) -> Path:
    """A model trained at TRAIN_DATE on a population of ``people`` (cached)."""
    path = OUT / "inputs" / f"model_{people}_{seed}"
    if not (path / "model.skops").exists():  # a folder from before skops holds a pickle: retrain
        print(f"  training a model on {people:,} people into {path} (cached)", file=sys.stderr)
        _run_cli("train", "--records", str(records_dir(people, seed)), "--index-date", TRAIN_DATE,
                 "--out", str(path))
    return path


def features_file(people: int, seed: int = DEFAULT_SEED, index_date: str = SCORE_DATE) -> Path:
    """The population's features at ``index_date`` as one Parquet file (cached)."""
    path = OUT / "inputs" / f"features_{people}_{seed}_{index_date}.parquet"
    if not path.exists():
        from features.build import build_features
        from features.records import read_records

        print(f"  building features for {people:,} people at {index_date} (cached)", file=sys.stderr)
        build_features(read_records(records_dir(people, seed)), index_date, with_label=False).to_parquet(path)
    return path


def scores_file(people: int, seed: int = DEFAULT_SEED) -> Path:
    """The population scored at SCORE_DATE with reasons for the flagged, as the CLI writes it (cached)."""
    path = OUT / "inputs" / f"scores_{people}_{seed}.parquet"
    if not path.exists():
        print(f"  scoring {people:,} people (cached)", file=sys.stderr)
        _run_cli("score", "--records", str(records_dir(people, seed)), "--model", str(model_dir(seed=seed)),
                 "--index-date", SCORE_DATE, "--out", str(path))
    return path


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path.resolve()}"


def loaded_database(people: int, seed: int = DEFAULT_SEED) -> str:
    """An SQLite store with the population and its score run loaded (cached); returns its URL."""
    path = OUT / "inputs" / f"store_{people}_{seed}.db"
    done = path.with_suffix(".loaded")
    if not done.exists():
        path.unlink(missing_ok=True)
        print(f"  loading {people:,} people into {path} (cached)", file=sys.stderr)
        _run_cli("db", "upgrade", "--database", sqlite_url(path))
        _run_cli("load", "--records", str(records_dir(people, seed)), "--scores", str(scores_file(people, seed)),
                 "--model", str(model_dir(seed=seed)), "--database", sqlite_url(path))
        done.touch()
    return sqlite_url(path)


def scratch(name: str, people: int) -> Path:
    """An empty working folder for one bench run (under bench/out, gitignored)."""
    import shutil

    path = OUT / "scratch" / f"{name}_{people}"
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path
