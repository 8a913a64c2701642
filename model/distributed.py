"""Score past one machine on Dask: the same ``score_batch`` per partition, percentiles global.

Three passes over feature partitions held by the workers:

1. each worker computes its partition's probabilities with the fitted model (shipped to every
   worker once with ``client.scatter(..., broadcast=True)``) and sends back only
   ``probability`` and ``practice_code``;
2. the client concatenates them: that small table *is* the whole population for ranking;
3. each worker calls ``model.scoring.score_batch`` on its partition with that population, so
   overall and within-practice percentiles, flags and reasons equal an in-process run exactly,
   and writes ``part-NNNNN.parquet``.

Results go to a temporary folder beside ``out`` that replaces ``out`` only when every partition
has been written, so a failed run never leaves a half result where a good one was.
"""

from __future__ import annotations

import logging
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from features.build import parse_index_date
from features.errors import UserInputError
from features.partitioned import (
    MANIFEST as SPLIT_MANIFEST,
    build_features_partitioned,
    partition_name,
    partition_of,
    split_records,
)
from features.records import table_path
from model import persist
from model.score_file import DEFAULT_TOP_CUTOFFS, check_cutoffs
from model.scoring import predict_probability, score_batch, top_flags_in_words, write_scores

DEFAULT_WORKERS = 2  # the machine this was built on has two cores


@contextmanager
def dask_client(
    scheduler: str | None = None, workers: int = DEFAULT_WORKERS, processes: bool = False
) -> Iterator:
    """A ``distributed.Client``: connected to ``scheduler`` if given, else a small LocalCluster.

    The LocalCluster has ``workers`` single-threaded workers (threads in this process unless
    ``processes``) and no dashboard; what it serves is on random free local ports.
    """
    from distributed import Client, LocalCluster

    if scheduler:
        try:
            client = Client(scheduler, timeout="10s")
        except (OSError, TimeoutError, ValueError) as error:
            raise UserInputError(
                f"Could not reach the Dask scheduler at {scheduler} ({type(error).__name__})."
            ) from None
        with client:
            yield client
        return
    with LocalCluster(
        n_workers=workers,
        threads_per_worker=1,
        processes=processes,
        # The scheduler always serves HTTP (health, metrics); a random free local port, no dashboard.
        dashboard_address="127.0.0.1:0",
        scheduler_kwargs={"dashboard": False},
        silence_logs=logging.ERROR,
    ) as cluster, Client(cluster) as client:
        yield client


def _read_partition(path: str) -> pd.DataFrame:
    return pd.read_parquet(path)


def _population_part(features: pd.DataFrame, model) -> pd.DataFrame:
    """What the ranking needs from one partition: probability and practice, by nhs_number."""
    return pd.DataFrame(
        {
            "probability": predict_probability(model, features),
            "practice_code": features["practice_code"].to_numpy(),
        },
        index=features.index,
    )


def _score_partition(
    features: pd.DataFrame,
    model,
    population: pd.DataFrame,
    top_cutoffs: dict[str, float],
    explain_top: float | None,
    explain_flagged: bool,
    out_path: str,
    metadata: dict,
) -> dict[str, int]:
    scores = score_batch(
        features, model, top_cutoffs=top_cutoffs, population=population,
        explain_top=explain_top, explain_flagged=explain_flagged,
    )
    write_scores(scores, out_path, **metadata)
    counts = {name: int(scores[name].sum()) for name in top_cutoffs}
    return {"people": len(scores), **counts, "reasons": int(scores["reasons"].notna().sum())}


def split_features(features: pd.DataFrame, partitions: int) -> list[pd.DataFrame]:
    """An in-memory feature table cut into partitions by the same key as the records."""
    keys = partition_of(features.index.to_numpy(dtype=str), partitions)
    return [features.loc[keys == number] for number in range(partitions)]


def _is_records_folder(path: Path) -> bool:
    return table_path(path, "patients") is not None


def score_with_dask(
    records_dir: str | Path | None = None,
    model_dir: str | Path | None = None,
    out: str | Path | None = None,
    index_date: str | None = None,
    *,
    features_dir: str | Path | None = None,
    features: pd.DataFrame | None = None,
    scheduler: str | None = None,
    client=None,
    partitions: int | None = None,
    top_cutoffs: dict[str, float] | None = None,
    explain_top: float | None = None,
    explain_flagged: bool | None = None,
    workers: int = DEFAULT_WORKERS,
    processes: bool = False,
    progress: bool = True,
) -> None:
    """Score a population on Dask and write ``out/part-NNNNN.parquet`` (``score_batch`` columns).

    Give exactly one input:
    - ``records_dir``: a records folder (split by person into ``partitions``, features built on
      the workers at ``index_date``) or a folder already split by ``features.partitioned``;
    - ``features_dir``: feature partitions (``part-*.parquet``, index nhs_number) as written by
      ``features.partitioned.build_features_partitioned``;
    - ``features``: a feature table in memory, cut into ``partitions``.

    ``scheduler``: a Dask scheduler address; none starts a LocalCluster of ``workers``.
    ``client``: an existing Client (then ``scheduler`` is ignored). ``explain_flagged`` defaults
    to explaining every flagged person unless ``explain_top`` is given, as the local engine does.
    Every partition file carries the index date (when given), the model's sha256 and the top
    cut-offs in its schema metadata (``model.scoring.read_score_metadata``).
    Prints one summary line and returns None; read the results with ``pandas.read_parquet(out)``.
    """
    given = [x is not None for x in (records_dir, features_dir, features)]
    if sum(given) != 1:
        raise UserInputError("Give exactly one of a records folder, a features folder or a feature table to score.")
    if model_dir is None or out is None:
        raise UserInputError("Scoring needs a model folder and an output folder.")
    if partitions is not None and partitions < 1:
        raise UserInputError(f"The number of partitions must be at least 1, not {partitions}.")
    if explain_flagged is None:
        explain_flagged = explain_top is None
    top_cutoffs = check_cutoffs(top_cutoffs or DEFAULT_TOP_CUTOFFS)
    out = Path(out)

    if client is None:
        with dask_client(scheduler, workers=workers, processes=processes) as own_client:
            return score_with_dask(
                records_dir, model_dir, out, index_date, features_dir=features_dir,
                features=features, client=own_client, partitions=partitions,
                top_cutoffs=top_cutoffs, explain_top=explain_top,
                explain_flagged=explain_flagged, progress=progress,
            )

    model = persist.load(model_dir)  # checks hash and version once, here
    metadata = {
        "index_date": None if index_date is None else f"{parse_index_date(index_date):%Y-%m-%d}",
        "model_sha256": persist.model_sha256(model_dir),
        "top_cutoffs": top_cutoffs,
    }
    partitions = partitions or 2 * max(len(client.scheduler_info()["workers"]), 1)
    with tempfile.TemporaryDirectory(prefix=".scoring-", dir=out.parent if out.parent.exists() else None) as work:
        work = Path(work)
        if records_dir is not None:
            records_dir = Path(records_dir)
            if index_date is None:
                raise UserInputError("Scoring a records folder needs an index date.")
            if _is_records_folder(records_dir):
                split_dir = work / "records"
                split_records(records_dir, split_dir, partitions, progress=progress)
            elif (records_dir / SPLIT_MANIFEST).exists():
                split_dir = records_dir
            else:
                raise UserInputError(
                    f"The folder {records_dir} is neither a records folder nor records split into partitions."
                )
            features_dir = work / "features"
            build_features_partitioned(
                split_dir, index_date, features_dir, with_label=False, client=client, progress=progress
            )
        if features_dir is not None:
            files = sorted(Path(features_dir).glob("part-*.parquet"))
            if not files:
                raise UserInputError(f"The folder {features_dir} holds no part-*.parquet feature files.")
            parts = client.map(_read_partition, [str(f) for f in files], pure=False)
        else:
            parts = client.scatter(split_features(features, partitions))

        shipped_model = client.scatter(model, broadcast=True)
        population_parts = [
            client.submit(_population_part, part, shipped_model, pure=False) for part in parts
        ]
        population = pd.concat(client.gather(population_parts))
        if population.empty:
            raise UserInputError("There is no one to score: the feature partitions are empty.")
        shipped_population = client.scatter(population, broadcast=True)

        staging = work / "scores"
        staging.mkdir()
        targets = [str(staging / f"{partition_name(n)}.parquet") for n in range(len(parts))]
        written = [
            client.submit(
                _score_partition, part, shipped_model, shipped_population, top_cutoffs,
                explain_top, explain_flagged, target, metadata, pure=False,
            )
            for part, target in zip(parts, targets)
        ]
        from distributed import as_completed

        totals: dict[str, int] = {}
        with tqdm(total=len(written), desc="scoring", unit="partition", disable=not progress, file=sys.stderr) as bar:
            for future in as_completed(written):
                for name, count in future.result().items():
                    totals[name] = totals.get(name, 0) + count
                bar.update(1)
        if out.exists():
            shutil.rmtree(out) if out.is_dir() else out.unlink()
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(staging), str(out))
    flagged = top_flags_in_words(totals, top_cutoffs)
    print(
        f"Scored {totals.get('people', 0):,} people in {len(targets)} partitions on Dask: "
        f"{flagged}, {totals.get('reasons', 0):,} with reasons. Written to {out}/."
    )
    return None
