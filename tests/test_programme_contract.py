"""The programme records' contract (features/programme.py)."""

from __future__ import annotations

import pandas as pd
import pandera.errors
import pytest

from features.programme import PROGRAMME_SCHEMA, empty_programme


def events(**changes) -> pd.DataFrame:
    row = {"date": pd.Timestamp("2024-03-01"), "practice_code": "C82001", "event": "flagged",
           "nhs_number": "9990000018", "meeting_id": None, "risk_score": 0.31, "reason": "risk",
           "role": None, "name": None, "next_review": None, "attendee_roles": None}
    return pd.DataFrame([{**row, **changes}])


def test_a_flagged_event_and_an_empty_table_are_valid():
    assert len(PROGRAMME_SCHEMA.validate(events())) == 1
    assert list(empty_programme().columns) == list(PROGRAMME_SCHEMA.columns)


@pytest.mark.parametrize("changes", [{"event": "plan_agreed_maybe"}, {"risk_score": None},
                                     {"event": "mdt_discussed", "meeting_id": None}, {"risk_score": 1.5},
                                     {"event": "plan_closed", "reason": "bored"}])
def test_broken_events_are_refused(changes):
    with pytest.raises(pandera.errors.SchemaError):
        PROGRAMME_SCHEMA.validate(events(**changes))
