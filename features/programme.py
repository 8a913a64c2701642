"""The proactive-care programme as event records: ``programme.parquet`` in a records folder
(optional). Our generator writes it (the simulated programme); the loader replays it into the store
through the app's services; ``proactive-care impact`` reads it with the encounters to estimate
whether care plans changed emergency admissions.

One row per event, in date order:

| event | nhs_number | meeting_id | other columns |
|---|---|---|---|
| ``flagged`` | the person | - | ``risk_score``: the risk tool's probability that month; ``reason``: ``risk`` or ``clinical_judgement`` (why they are on the practice's list) |
| ``mdt_meeting`` | - | the meeting | ``attendee_roles``: roles joined by ``|`` |
| ``mdt_discussed`` | the person | the meeting | |
| ``plan_agreed`` | the person | the meeting, or null | ``next_review`` |
| ``plan_declined`` | the person | the meeting, or null | |
| ``plan_reviewed`` | the person | null | ``next_review`` |
| ``plan_closed`` | the person | null | ``reason``: ``died``, ``moved_away`` or ``no_longer_needed`` |
| ``lead_assigned`` | the person | null | ``role`` (a lead professional role of the app), ``name`` |
| ``navigator_assigned`` | the person | null | ``name``: the navigator's username |

Every row has ``date`` and ``practice_code``. A ``flagged`` row is written when a person first joins
a practice's list of people eligible for the programme (and again if they rejoin after leaving it),
whether or not they are later picked: the people flagged and not picked at the same time are the
comparison the impact estimate needs. ``meeting_id`` is unique across the folder.
"""

from __future__ import annotations

import pandas as pd
import pandera.pandas as pa

from features.text import text_checks

PROGRAMME_TABLE = "programme"
PROGRAMME_EVENTS: tuple[str, ...] = (
    "flagged", "mdt_meeting", "mdt_discussed", "plan_agreed", "plan_declined", "plan_reviewed",
    "plan_closed", "lead_assigned", "navigator_assigned",
)
PERSON_EVENTS = tuple(event for event in PROGRAMME_EVENTS if event != "mdt_meeting")
FLAGGED_REASONS = ("risk", "clinical_judgement")
CLOSE_REASONS = ("died", "moved_away", "no_longer_needed")

PROGRAMME_SCHEMA = pa.DataFrameSchema(
    {
        "date": pa.Column("datetime64[ns]"),
        "practice_code": pa.Column(str, text_checks("practice_code")),
        "event": pa.Column(str, pa.Check.isin(PROGRAMME_EVENTS)),
        "nhs_number": pa.Column(str, nullable=True),
        "meeting_id": pa.Column("Int64", pa.Check.ge(1), nullable=True),
        "risk_score": pa.Column(float, pa.Check.in_range(0.0, 1.0), nullable=True),
        "reason": pa.Column(str, pa.Check.isin(FLAGGED_REASONS + CLOSE_REASONS), nullable=True),
        "role": pa.Column(str, nullable=True),
        "name": pa.Column(str, nullable=True),
        "next_review": pa.Column("datetime64[ns]", nullable=True),
        "attendee_roles": pa.Column(str, nullable=True),
    },
    checks=[
        pa.Check(lambda f: f["nhs_number"].notna() | (f["event"] == "mdt_meeting"),
                 error="every event but mdt_meeting names a person"),
        pa.Check(lambda f: f["meeting_id"].notna() | ~f["event"].isin(["mdt_meeting", "mdt_discussed"]),
                 error="a meeting and a discussion name their meeting"),
        pa.Check(lambda f: f["risk_score"].notna() | (f["event"] != "flagged"),
                 error="a flagged event gives the risk score"),
    ],
    coerce=True,
    strict=False,
    name=PROGRAMME_TABLE,
)


def empty_programme() -> pd.DataFrame:
    """A programme table with no events, in the contract's columns and types."""
    return PROGRAMME_SCHEMA.coerce_dtype(pd.DataFrame({name: [] for name in PROGRAMME_SCHEMA.columns}))
