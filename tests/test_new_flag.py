"""Adding a flag is one definition: a copy of the code with one more ``Flag`` in features/flags.py,
and nothing else changed, shows the new flag in the score file, the store, the high-risk list,
coverage and the exports."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
NEW_FLAG = '''
    Flag("aged_85_plus", "Aged 85 and over", "Everyone aged 85 or over.",
         rule=lambda f: f["age"] >= 85, needs=("age",)),'''

SCRIPT = textwrap.dedent('''
    import sys
    from pathlib import Path
    sys.path.insert(0, sys.argv[2])  # the tests folder, for the tiny population
    from conftest import make_model_dir, make_records, make_scores, write_score_file
    from features.records import write_records
    from app.db import get_engine, session_scope
    from app.exports import to_csv_bytes
    from app.load import load
    from app.migrations import upgrade
    from app.services import coverage, patients
    from app.services.users import get_user

    base = Path(sys.argv[1])
    records = make_records()
    write_records(records, base / "records")
    make_model_dir(base / "model")
    write_score_file(make_scores(records), base / "scores.parquet", base / "model")  # with its provenance
    url = f"sqlite:///{base / 'store.db'}"
    upgrade(url)
    load(base / "records", base / "scores.parquet", base / "model", url, progress=False)
    engine = get_engine(url)
    with session_scope(engine, write=True) as session:
        gp, commissioner = get_user(session, "practice1"), get_user(session, "commissioner")
        listed = patients.flagged_list(session, gp, flags=["aged_85_plus"])
        table = coverage.coverage(session, commissioner, level="area").set_index("group")
    assert len(listed) > 0 and (listed["age"] >= 85).all(), listed[["age"]]
    assert listed["aged_85_plus"].all()
    assert all("Aged 85 and over" in labels for labels in listed["flag_labels"])
    assert table.at["aged_85_plus", "group_label"] == "Aged 85 and over"
    assert b"Aged 85 and over" in to_csv_bytes(listed)
    assert "aged_85_plus" in coverage.coverage_csv(table.reset_index())
    print("new flag reached", len(listed), "people")
''')


@pytest.mark.slow
def test_a_flag_added_in_the_registry_alone_reaches_list_coverage_and_export(tmp_path):
    copy = tmp_path / "code"
    for package in ("features", "model", "app", "synthetic_cohort"):
        shutil.copytree(REPO / package, copy / package, ignore=shutil.ignore_patterns("__pycache__"))
    registry = copy / "features" / "flags.py"
    source = registry.read_text()
    end_of_flags = "\n)\n\nFLAG_NAMES: tuple[str, ...] ="  # the closing bracket of FLAGS
    assert source.count(end_of_flags) == 1
    registry.write_text(source.replace(end_of_flags, NEW_FLAG + end_of_flags, 1))
    script = tmp_path / "new_flag.py"
    script.write_text(SCRIPT)
    work = tmp_path / "work"
    work.mkdir()
    result = subprocess.run(
        [sys.executable, str(script), str(work), str(REPO / "tests")], cwd=copy, capture_output=True, text=True,
        env={"PYTHONPATH": str(copy), "PATH": "/usr/bin:/bin", "PROACTIVE_CARE_MODE": "demo",
             "HOME": str(tmp_path)}, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "new flag reached" in result.stdout
