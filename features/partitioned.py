"""Features partition by partition: the same rows as ``build_features``, built in pieces.

People are split by ``int(nhs_number) mod P`` (every table keyed by nhs_number goes with its
person), so each partition is an ordinary records folder that ``read_records`` reads and
``build_features`` turns into exactly that partition's rows of the whole-population build:
every feature depends on one person's records only. The one population-wide fact, whether the
records cover the 12 months after the index date (the label), is decided once from the whole
records and passed to every partition.

Layout written by ``split_records``::

    OUT/partitions.json          partitions, key, latest encounter date, source
    OUT/part-00000/patients.parquet, practices.parquet, conditions.parquet, encounters.parquet, ...

and by ``build_features_partitioned``: ``FEATURES/part-00000.parquet`` (index nhs_number), which
``pandas.read_parquet(FEATURES)`` or Dask reads as one table.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from tqdm import tqdm

from features.build import build_features, label_window_covered, parse_index_date
from features.errors import UserInputError
from features.records import OPTIONAL_TABLES, REQUIRED_TABLES, Records, read_records, table_path

MANIFEST = "partitions.json"
PERSON_TABLES = ("patients", "conditions", "encounters", "observations")  # keyed by nhs_number
SHARED_TABLES = ("practices",)  # copied whole into every partition
# truth is never a model input, so it is not carried into partitions.
BATCH_ROWS = 1 << 20


def partition_name(number: int) -> str:
    return f"part-{number:05d}"


def partition_of(nhs_numbers: pa.Array | pa.ChunkedArray, partitions: int) -> np.ndarray:
    """The partition number of each NHS number (10-digit strings, so an integer modulus)."""
    as_integers = pc.cast(nhs_numbers, pa.int64())
    return np.asarray(pc.remainder(as_integers, partitions), dtype=np.int64)


def _table_batches(path: Path) -> Iterable[pa.RecordBatch]:
    if path.suffix == ".parquet":
        yield from pq.ParquetFile(path).iter_batches(batch_size=BATCH_ROWS)
    else:  # CSV: read whole, with the same types read_records uses
        frame = pd.read_csv(path, dtype={"nhs_number": str})
        yield from pa.Table.from_pandas(frame, preserve_index=False).to_batches(BATCH_ROWS)


def _schema(path: Path) -> pa.Schema:
    if path.suffix == ".parquet":
        return pq.read_schema(path)
    return next(iter(_table_batches(path))).schema


def split_records(
    records_dir: str | Path, out_dir: str | Path, partitions: int, progress: bool = True
) -> dict:
    """Split a records folder into ``partitions`` records folders by person; returns the manifest.

    Streams each table in batches (memory stays bounded by the batch, not the population) and
    keeps the original row order within each partition.
    """
    if partitions < 1:
        raise UserInputError(f"The number of partitions must be at least 1, not {partitions}.")
    records_dir, out_dir = Path(records_dir), Path(out_dir)
    if not records_dir.is_dir():
        raise UserInputError(f"The records folder {records_dir} does not exist.")
    for table in REQUIRED_TABLES:
        if table_path(records_dir, table) is None:
            raise UserInputError(
                f"The records folder {records_dir} has no {table}.parquet or {table}.csv."
            )
    if out_dir.exists():
        shutil.rmtree(out_dir)
    part_dirs = [out_dir / partition_name(number) for number in range(partitions)]
    for part_dir in part_dirs:
        part_dir.mkdir(parents=True)

    latest_encounter = None
    tables = [t for t in REQUIRED_TABLES + OPTIONAL_TABLES if t in PERSON_TABLES + SHARED_TABLES]
    for table in tqdm(tables, desc="splitting records", unit="table", disable=not progress):
        path = table_path(records_dir, table)
        if path is None:
            continue
        if table in SHARED_TABLES:
            shared = pq.read_table(path) if path.suffix == ".parquet" else pa.Table.from_pandas(
                pd.read_csv(path), preserve_index=False
            )
            for part_dir in part_dirs:
                pq.write_table(shared, part_dir / f"{table}.parquet")
            continue
        schema = _schema(path)
        writers = [pq.ParquetWriter(part_dir / f"{table}.parquet", schema) for part_dir in part_dirs]
        try:
            for batch in _table_batches(path):
                if table == "encounters" and batch.num_rows:
                    batch_latest = pc.max(batch.column("date")).as_py()
                    if batch_latest is not None:
                        latest_encounter = max(latest_encounter or batch_latest, batch_latest)
                keys = partition_of(batch.column("nhs_number"), partitions)
                order = np.argsort(keys, kind="stable")
                bounds = np.searchsorted(keys[order], np.arange(partitions + 1))
                ordered = batch.take(pa.array(order))
                for number, writer in enumerate(writers):
                    start, end = bounds[number], bounds[number + 1]
                    writer.write_batch(ordered.slice(start, end - start))
        finally:
            for writer in writers:
                writer.close()

    manifest = {
        "partitions": partitions,
        "key": "int(nhs_number) mod partitions",
        "latest_encounter": None if latest_encounter is None else pd.Timestamp(latest_encounter).isoformat(),
        "source": str(records_dir),
    }
    (out_dir / MANIFEST).write_text(json.dumps(manifest, indent=2))
    return manifest


def read_manifest(partitioned_dir: str | Path) -> dict:
    path = Path(partitioned_dir) / MANIFEST
    if not path.exists():
        raise UserInputError(
            f"The folder {partitioned_dir} has no {MANIFEST}; split records into it with split_records first."
        )
    return json.loads(path.read_text())


def partition_dirs(partitioned_dir: str | Path) -> list[Path]:
    manifest = read_manifest(partitioned_dir)
    return [Path(partitioned_dir) / partition_name(n) for n in range(manifest["partitions"])]


def label_covered(manifest: dict, index_date: pd.Timestamp) -> bool:
    """The whole population's answer to "do the records cover the label year?"."""
    if manifest["latest_encounter"] is None:
        return False
    # Only the latest encounter matters to the one rule in features.build; pass just that.
    latest_only = Records(
        patients=pd.DataFrame(), practices=pd.DataFrame(), conditions=pd.DataFrame(),
        encounters=pd.DataFrame({"date": [pd.Timestamp(manifest["latest_encounter"])]}),
    )
    return label_window_covered(latest_only, index_date)


def build_partition_features(
    part_dir: str | Path, index_date: str, with_label: bool, out_path: str | Path
) -> str:
    """Build one partition's features and write them as Parquet; returns the file written.

    A plain function of paths so a Dask worker can run it where the files are.
    """
    features = build_features(read_records(part_dir), index_date, with_label=with_label)
    features.to_parquet(out_path)
    return str(out_path)


def build_features_partitioned(
    partitioned_dir: str | Path,
    index_date: str | pd.Timestamp,
    out_dir: str | Path,
    with_label: bool | None = None,
    client=None,
    progress: bool = True,
) -> list[Path]:
    """Build every partition's features into ``out_dir/part-NNNNN.parquet``.

    ``with_label`` as in ``build_features`` but decided once for the whole population.
    ``client``: a ``distributed.Client`` to build partitions on its workers in parallel; None
    builds them one after another in this process (memory bounded by one partition).
    """
    index_date = parse_index_date(index_date)
    manifest = read_manifest(partitioned_dir)
    covered = label_covered(manifest, index_date)
    if with_label is None:
        with_label = covered
    elif with_label and not covered:
        raise UserInputError(
            f"The records in {manifest['source']} do not cover the 12 months after "
            f"{index_date:%Y-%m-%d}, so there is no outcome to learn from or evaluate."
        )
    out_dir = Path(out_dir)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    parts = partition_dirs(partitioned_dir)
    targets = [out_dir / f"{part.name}.parquet" for part in parts]
    date_text = f"{index_date:%Y-%m-%d}"
    bar = tqdm(total=len(parts), desc="building features", unit="partition", disable=not progress)
    with bar:
        if client is None:
            for part, target in zip(parts, targets):
                build_partition_features(part, date_text, with_label, target)
                bar.update(1)
        else:
            from distributed import as_completed

            futures = client.map(
                build_partition_features,
                [str(p) for p in parts],
                [date_text] * len(parts),
                [with_label] * len(parts),
                [str(t) for t in targets],
                pure=False,
            )
            for future in as_completed(futures):
                future.result()  # re-raises a worker's error here
                bar.update(1)
    return targets


def read_features(features_dir: str | Path) -> pd.DataFrame:
    """All partitions' features as one table (index nhs_number), in partition order."""
    files = sorted(Path(features_dir).glob("part-*.parquet"))
    if not files:
        raise UserInputError(f"The folder {features_dir} holds no part-*.parquet feature files.")
    return pd.concat([pd.read_parquet(f) for f in files])
