"""Loading a model folder: the checked skops load (`persist.load`: sha256, type audit, build) against
unpickling the same fitted model, which is what `persist.load` did before skops.

    .venv/bin/python bench/bench_model_load.py [--model DIR] [--repeat 5]

Without --model it uses the bench's cached 100,000-person model (trained on first use).
"""

from __future__ import annotations

import argparse
import pickle
from pathlib import Path
import statistics
import time

from common import model_dir

from model import persist


def best_and_median(function, repeat: int) -> tuple[float, float]:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return min(times), statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="a model folder (default: the bench's 100k model)")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    folder = Path(args.model) if args.model else model_dir()
    started = time.perf_counter()
    model = persist.load(folder)  # the first load also imports scikit-learn and skops
    first = time.perf_counter() - started
    pickled = pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL)  # our own object: safe to unpickle here
    skops_best, skops_median = best_and_median(lambda: persist.load(folder), args.repeat)
    pickle_best, pickle_median = best_and_median(lambda: pickle.loads(pickled), args.repeat)
    size = persist.verified_model_file(folder)[0].stat().st_size
    print(f"model folder {folder}: {size / 1024:,.0f} KiB, {model.boosting.n_iter_} boosting iterations")
    print(f"first persist.load (with imports): {first:.2f} s")
    print(f"persist.load (skops, checked):      best {skops_best:.3f} s, median {skops_median:.3f} s")
    print(f"pickle.loads of the same model:     best {pickle_best:.3f} s, median {pickle_median:.3f} s")
    print(f"ratio (median): {skops_median / pickle_median:.1f}x")


if __name__ == "__main__":
    main()
