"""Import another system's patient records (Synthea CSV exports, FHIR R4 bundles) as our records.

``import_synthea(directory, out)`` and ``import_fhir(directory, out)`` read, map (see
``mappings.py`` and docs/importing.md), validate against ``features.records.SCHEMAS`` and write a
records folder plus ``import_report.json``, or raise ``ImportProblems`` listing every problem
with file, row and column and write nothing.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from features.records import Records, write_records
from synthetic_cohort.importers.assemble import ImportOptions, SourceTables, assemble
from synthetic_cohort.importers.problems import ImportProblems, Problem, ProblemLog

REPORT_FILE = "import_report.json"

__all__ = [
    "REPORT_FILE", "ImportOptions", "ImportProblems", "Problem", "import_fhir", "import_synthea",
    "read_import",
]


def read_import(
    reader: Callable[[Path, ProblemLog], SourceTables | None],
    directory: str | Path,
    options: ImportOptions = ImportOptions(),
) -> tuple[Records, dict]:
    """Records and mapping report in memory, or ImportProblems."""
    log = ProblemLog()
    source = reader(Path(directory), log)
    records, report = (None, {}) if source is None else assemble(source, log, options)
    log.raise_if_any(str(directory))
    report = {"source": str(directory), **report}
    records.source = str(directory)
    return records, report


def write_import(records: Records, report: dict, out: str | Path) -> None:
    """Write into a temporary folder beside ``out`` and rename it into place only when complete."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.importing-", dir=out.parent))
    staging.chmod(0o755)  # mkdtemp makes it private; the records folder is an ordinary folder
    try:
        write_records(records, staging)
        (staging / REPORT_FILE).write_text(json.dumps(report, indent=2, default=str) + "\n")
        if out.exists():
            retired = Path(tempfile.mkdtemp(prefix=f".{out.name}.replaced-", dir=out.parent))
            out.rename(retired / out.name)
            staging.rename(out)
            shutil.rmtree(retired)
        else:
            staging.rename(out)
    finally:
        if staging.exists():
            shutil.rmtree(staging)


def import_synthea(directory: str | Path, out: str | Path, options: ImportOptions = ImportOptions()) -> dict:
    from synthetic_cohort.importers.synthea import read_synthea

    records, report = read_import(read_synthea, directory, options)
    write_import(records, report, out)
    return report


def import_fhir(directory: str | Path, out: str | Path, options: ImportOptions = ImportOptions()) -> dict:
    from synthetic_cohort.importers.fhir import read_fhir

    records, report = read_import(read_fhir, directory, options)
    write_import(records, report, out)
    return report
