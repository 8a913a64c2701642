"""A small store for the caseload, meeting and page tests (imported by them; holds no tests).

Three practices in two PCNs, 40 people each, one current score run in which a third of people are
flagged, and the documented demo users (``practice1`` has P001+P002, ``practice2`` has P003).
"""

from __future__ import annotations

import json
import random
import shutil
import tempfile
from datetime import date, timedelta
from pathlib import Path

import pandas as pd
from nhs_number import calculate_checksum
from sqlalchemy import Engine

from app.db import get_engine, session_scope
from features.flags import FLAG_NAMES, flag_bits
from app.services.users import demo_users, hash_password
from app.store import Base, Patient, Pcn, Practice, RegisteredModel, Score, ScoreRun, User

PRACTICES = [("P001", "PCN1"), ("P002", "PCN1"), ("P003", "PCN2")]
PEOPLE_PER_PRACTICE = 40


def synthetic_nhs_numbers(count: int) -> list[str]:
    """Valid numbers in the 999 range that is never issued to real people."""
    numbers, serial = [], 0
    while len(numbers) < count:
        digits = f"999{serial:06d}"
        check = calculate_checksum(digits)
        if check is not None and check < 10:
            numbers.append(f"{digits}{check}")
        serial += 1
    return numbers


_TEMPLATES: dict[tuple[bool, bool, bool], Path] = {}


def build_store(path: Path, *, flagged: bool = True, users: bool = True, model_reasons: bool = False) -> Engine:
    """An SQLite store at ``path``, copied from a template built once per test session (hashing
    the demo passwords is the slow part); ``flagged=False`` leaves nobody flagged;
    ``model_reasons=True`` stores reasons as the model writes them: dicts, for the top 5% only."""
    key = (flagged, users, model_reasons)
    if key not in _TEMPLATES:
        template = Path(tempfile.mkdtemp(prefix="pc-store-")) / "template.db"
        _fill_store(f"sqlite:///{template}", flagged=flagged, users=users,
                    model_reasons=model_reasons).dispose()
        _TEMPLATES[key] = template
    shutil.copyfile(_TEMPLATES[key], path)
    return get_engine(f"sqlite:///{path}")


def _fill_store(url: str, *, flagged: bool, users: bool, model_reasons: bool) -> Engine:
    engine = get_engine(url)
    Base.metadata.create_all(engine)
    rng = random.Random(7)
    numbers = synthetic_nhs_numbers(PEOPLE_PER_PRACTICE * len(PRACTICES))
    with session_scope(engine, write=True) as session:
        for pcn in sorted({p for _, p in PRACTICES}):
            session.add(Pcn(pcn_code=pcn, pcn_name=f"{pcn} network"))
        session.flush()
        for code, pcn in PRACTICES:
            session.add(Practice(practice_code=code, practice_name=f"{code} Surgery", pcn_code=pcn))
        session.add(RegisteredModel(sha256="0" * 64, name="test model"))
        session.flush()
        run = ScoreRun(model_sha256="0" * 64, index_date=date(2026, 1, 1), people=len(numbers),
                       is_current=True)
        session.add(run)
        session.flush()
        for i, nhs in enumerate(numbers):
            practice, pcn = PRACTICES[i // PEOPLE_PER_PRACTICE]
            age = rng.randint(20, 95)
            session.add(Patient(
                nhs_number=nhs, given_name=f"Given{i}", family_name=f"Family{i}",
                date_of_birth=date(2026, 1, 1) - timedelta(days=365 * age + 100), sex=rng.choice("FM"),
                ethnicity="White", imd_decile=rng.randint(1, 10), practice_code=practice, pcn_code=pcn,
                registered_from=date(2015, 1, 1), care_home=False,
            ))
            probability = rng.random() * 0.6
            is_flagged = flagged and i % 3 == 0
            session.add(Score(
                run_id=run.id, nhs_number=nhs, practice_code=practice, probability=probability,
                percentile=probability * 100 / 0.6, practice_percentile=probability * 100 / 0.6,
                flags=flag_bits(pd.DataFrame([{
                    "top_2pct": is_flagged and probability > 0.5, "top_5pct": is_flagged and probability > 0.4,
                    "age_60_plus": is_flagged and age >= 60, "age_18_59_3plus_ltc": is_flagged and age < 60,
                    **{name: False for name in FLAG_NAMES[4:]}}]))[0].item(),
                flagged=is_flagged,
                reasons=_reasons(model_reasons, is_flagged and probability > 0.4),
            ))
        if users:
            # The documented demo accounts, written directly so the test does not depend on
            # the seeding rules (password length) of the users service.
            for demo in demo_users(PRACTICES):
                session.add(User(
                    username=demo.username, display_name=demo.display_name, role=demo.role.value,
                    password_hash=hash_password(demo.password), practice_codes=list(demo.practice_codes),
                    pcn_codes=list(demo.pcn_codes), is_demo=True,
                    caseload_capacity=50 if demo.role.value == "navigator" else None,
                ))
    return engine


def _reasons(model_reasons: bool, top_5pct: bool) -> str | None:
    if not model_reasons:
        return json.dumps(["Two emergency admissions in the last year", "Aged 80 or over"])
    if not top_5pct:
        return None
    return json.dumps([
        {"feature": "emergency_admissions_12m", "text": "2 emergency admissions in the last 12 months — "
         "raises risk a lot", "direction": "raises", "strength": "a lot", "contribution": 0.61},
        {"feature": "age", "text": "aged 83 — lowers risk a little", "direction": "lowers",
         "strength": "a little", "contribution": -0.12},
    ])


def flagged_numbers(practice_code: str) -> list[str]:
    """NHS numbers flagged by ``build_store`` at one practice, in order."""
    numbers = synthetic_nhs_numbers(PEOPLE_PER_PRACTICE * len(PRACTICES))
    start = [p for p, _ in PRACTICES].index(practice_code) * PEOPLE_PER_PRACTICE
    return [numbers[i] for i in range(start, start + PEOPLE_PER_PRACTICE) if i % 3 == 0]


def demo_password(username: str) -> str:
    return next(d.password for d in demo_users(PRACTICES) if d.username == username)
