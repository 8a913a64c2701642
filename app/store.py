"""The store: SQLAlchemy 2 typed tables. Alembic migrations in ``app/migrations`` create them.

Identifiable data (patients, conditions, encounter summaries) is only read through
``app/services`` where ``app/services/access.py`` decides who may see it. The audit table is
append-only: the migration adds triggers that reject UPDATE and DELETE on it.
"""

from __future__ import annotations

from datetime import date, datetime, timezone

from sqlalchemy import (
    JSON,
    Boolean,
    ColumnElement,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from features.flags import FLAG_NAMES, bit_of, flags_from_bits
from features.text import MAX_LENGTHS
from model.score_file import cutoffs_in_force


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Base(DeclarativeBase):
    pass


class Pcn(Base):
    __tablename__ = "pcns"
    pcn_code: Mapped[str] = mapped_column(String(MAX_LENGTHS["pcn_code"]), primary_key=True)
    pcn_name: Mapped[str] = mapped_column(String(MAX_LENGTHS["pcn_name"]))


class Practice(Base):
    __tablename__ = "practices"
    practice_code: Mapped[str] = mapped_column(String(MAX_LENGTHS["practice_code"]), primary_key=True)
    practice_name: Mapped[str] = mapped_column(String(MAX_LENGTHS["practice_name"]))
    pcn_code: Mapped[str] = mapped_column(ForeignKey("pcns.pcn_code"), index=True)


class Patient(Base):
    __tablename__ = "patients"
    nhs_number: Mapped[str] = mapped_column(String(10), primary_key=True)
    given_name: Mapped[str | None] = mapped_column(String(MAX_LENGTHS["given_name"]))
    family_name: Mapped[str | None] = mapped_column(String(MAX_LENGTHS["family_name"]))
    date_of_birth: Mapped[date] = mapped_column(Date)
    sex: Mapped[str] = mapped_column(String(1))
    ethnicity: Mapped[str | None] = mapped_column(String(20))
    imd_decile: Mapped[int | None] = mapped_column(Integer)
    practice_code: Mapped[str] = mapped_column(String(MAX_LENGTHS["practice_code"]), index=True)
    pcn_code: Mapped[str] = mapped_column(String(MAX_LENGTHS["pcn_code"]), index=True)
    registered_from: Mapped[date] = mapped_column(Date)
    registered_to: Mapped[date | None] = mapped_column(Date)
    date_of_death: Mapped[date | None] = mapped_column(Date)
    care_home: Mapped[bool] = mapped_column(Boolean, default=False)


class Condition(Base):
    __tablename__ = "conditions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    nhs_number: Mapped[str] = mapped_column(String(10), index=True)
    condition: Mapped[str] = mapped_column(String(40))
    diagnosed_on: Mapped[date] = mapped_column(Date)


class EncounterSummary(Base):
    """Hospital and GP use per person, kind and calendar year (event rows stay in the records)."""

    __tablename__ = "encounter_summaries"
    nhs_number: Mapped[str] = mapped_column(String(10), primary_key=True)
    kind: Mapped[str] = mapped_column(String(40), primary_key=True)
    year: Mapped[int] = mapped_column(Integer, primary_key=True)
    count: Mapped[int] = mapped_column(Integer)
    last_date: Mapped[date] = mapped_column(Date)


class RegisteredModel(Base):
    __tablename__ = "registered_models"
    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    registered_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    manifest: Mapped[dict | None] = mapped_column(JSON)


class ScoreRun(Base):
    __tablename__ = "score_runs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    model_sha256: Mapped[str] = mapped_column(ForeignKey("registered_models.sha256"))
    index_date: Mapped[date | None] = mapped_column(Date)
    source: Mapped[str | None] = mapped_column(String(500))
    people: Mapped[int] = mapped_column(Integer, default=0)
    is_current: Mapped[bool] = mapped_column(Boolean, default=False, index=True)
    # The fraction of the population each risk flag holds, as the score file says ({} when it did not).
    cutoffs: Mapped[dict | None] = mapped_column(JSON, default=dict)
    # The flags in the order of the bits of ``Score.flags`` (features.flags.FLAGS when loaded).
    flag_names: Mapped[list | None] = mapped_column(JSON, default=lambda: list(FLAG_NAMES))

    @property
    def top_cutoffs(self) -> dict[str, float]:
        """The cut-offs this run's risk flags used (the defaults when it did not record them)."""
        return cutoffs_in_force(self.cutoffs)

    def has_flag(self, name: str) -> ColumnElement[bool]:
        """A WHERE clause on ``Score``: the person has flag ``name`` in this run (never, if the run
        did not know that flag)."""
        try:
            return Score.flags.op("&")(bit_of(name, self.flag_names or ())) != 0
        except KeyError:
            return false()

    def flags_of(self, bits: int | None) -> list[str]:
        """The names of the flags set in a ``Score.flags`` value of this run."""
        return flags_from_bits(int(bits or 0), self.flag_names or ())


class Score(Base):
    __tablename__ = "scores"
    run_id: Mapped[int] = mapped_column(
        ForeignKey("score_runs.id", ondelete="CASCADE"), primary_key=True
    )
    nhs_number: Mapped[str] = mapped_column(String(10), primary_key=True)
    practice_code: Mapped[str] = mapped_column(String(MAX_LENGTHS["practice_code"]))
    probability: Mapped[float] = mapped_column(Float)
    percentile: Mapped[float] = mapped_column(Float)
    practice_percentile: Mapped[float | None] = mapped_column(Float)
    # Bit i set: the person has flag ScoreRun.flag_names[i] (one column, however many flags).
    flags: Mapped[int] = mapped_column(Integer, default=0)
    flagged: Mapped[bool] = mapped_column(Boolean)  # flags != 0, kept for the list's index
    efi_category: Mapped[str | None] = mapped_column(String(10))
    reasons: Mapped[str | None] = mapped_column(Text)  # JSON list of plain-words reasons
    missing_predictors: Mapped[str | None] = mapped_column(Text)  # JSON list

    __table_args__ = (Index("ix_scores_run_practice_flagged", "run_id", "practice_code", "flagged"),)


class User(Base):
    __tablename__ = "users"
    username: Mapped[str] = mapped_column(String(64), primary_key=True)
    display_name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(20))
    password_hash: Mapped[str] = mapped_column(String(200))
    practice_codes: Mapped[list] = mapped_column(JSON, default=list)
    pcn_codes: Mapped[list] = mapped_column(JSON, default=list)
    caseload_capacity: Mapped[int | None] = mapped_column(Integer)
    is_demo: Mapped[bool] = mapped_column(Boolean, default=False)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class CaseloadAssignment(Base):
    """A person on a care navigator's caseload (one navigator per person)."""

    __tablename__ = "caseload_assignments"
    nhs_number: Mapped[str] = mapped_column(String(10), primary_key=True)
    navigator_username: Mapped[str] = mapped_column(ForeignKey("users.username"), index=True)
    assigned_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    assigned_by: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer, default=1)


class CurrentVersion:
    """A person's current lead professional or care plan: one row, its version rising with each save."""

    nhs_number: Mapped[str] = mapped_column(String(10), primary_key=True)
    version: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_by: Mapped[str] = mapped_column(String(64))


class SavedVersion:
    """One saved version in a history table (kept for ever)."""

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    nhs_number: Mapped[str] = mapped_column(String(10), index=True)
    version: Mapped[int] = mapped_column(Integer)
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    changed_by: Mapped[str] = mapped_column(String(64))


class LeadProfessionalFields:
    name: Mapped[str | None] = mapped_column(String(200))
    role: Mapped[str | None] = mapped_column(String(60))


class LeadProfessional(CurrentVersion, LeadProfessionalFields, Base):
    __tablename__ = "lead_professionals"


class LeadProfessionalHistory(SavedVersion, LeadProfessionalFields, Base):
    __tablename__ = "lead_professional_history"


class CarePlanFields:
    """What a care plan says: the current plan and each saved version share these columns.
    Dates inside the JSON lists are ISO text ("2026-12-02"); ``app/services/plan_content.py`` owns
    their shapes."""

    status: Mapped[str] = mapped_column(String(20))  # draft | agreed | closed (review_due is derived)
    what_matters: Mapped[str | None] = mapped_column(Text)  # "what matters to me", in the person's words
    goals: Mapped[list] = mapped_column(JSON, default=list)
    actions: Mapped[list] = mapped_column(JSON, default=list)  # [{"action", "owner", "due", "done_on"}]
    # who to call, day and night, instead of 999, and what to do: {"day_name", "day_phone", ...}
    contingency: Mapped[dict | None] = mapped_column(JSON, default=dict)
    contacts: Mapped[list | None] = mapped_column(JSON, default=list)  # [{"name", "relationship", "phone", "carer"}]
    follow_ups: Mapped[list | None] = mapped_column(JSON, default=list)  # [{"due", "what", "who", "done_on"}]
    consent_to_share: Mapped[bool] = mapped_column(Boolean, default=False)
    next_review: Mapped[date | None] = mapped_column(Date)
    close_reason: Mapped[str | None] = mapped_column(String(40))
    agreed_on: Mapped[date | None] = mapped_column(Date)
    closed_on: Mapped[date | None] = mapped_column(Date)


class CarePlan(CurrentVersion, CarePlanFields, Base):
    """One care plan per person; ``version`` rises with every saved change (history keeps each)."""

    __tablename__ = "care_plans"


class CarePlanHistory(SavedVersion, CarePlanFields, Base):
    __tablename__ = "care_plan_history"


class Assessment(Base):
    """One holistic assessment (CGA domains) of a person: appended, never changed (the history)."""

    __tablename__ = "assessments"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    nhs_number: Mapped[str] = mapped_column(String(10), index=True)
    assessed_on: Mapped[date] = mapped_column(Date)
    assessor_name: Mapped[str] = mapped_column(String(200))
    assessor_role: Mapped[str] = mapped_column(String(60))
    findings: Mapped[dict] = mapped_column(JSON, default=dict)  # {item: {"finding": ..., "note": ...}}
    what_matters: Mapped[str | None] = mapped_column(Text)
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    recorded_by: Mapped[str] = mapped_column(String(64))


class CohortDecisionFields:
    """Clinical judgement about who is in the programme (``app/services/cohort.py``)."""

    decision: Mapped[str] = mapped_column(String(10))  # include | exclude | ended
    reason: Mapped[str | None] = mapped_column(String(30))
    note: Mapped[str | None] = mapped_column(Text)
    flags: Mapped[list] = mapped_column(JSON, default=list)  # the flags an exclusion applies to
    review_on: Mapped[date | None] = mapped_column(Date)
    decided_on: Mapped[date] = mapped_column(Date)


class CohortDecision(CurrentVersion, CohortDecisionFields, Base):
    """A person's current clinical-judgement decision; versioned like care plans."""

    __tablename__ = "cohort_decisions"


class CohortDecisionHistory(SavedVersion, CohortDecisionFields, Base):
    __tablename__ = "cohort_decision_history"


class MdtMeeting(Base):
    __tablename__ = "mdt_meetings"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    practice_code: Mapped[str] = mapped_column(String(MAX_LENGTHS["practice_code"]), index=True)
    meeting_date: Mapped[date] = mapped_column(Date)
    attendee_roles: Mapped[list] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    created_by: Mapped[str] = mapped_column(String(64))


class MdtAgendaItem(Base):
    __tablename__ = "mdt_agenda_items"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    meeting_id: Mapped[int] = mapped_column(
        ForeignKey("mdt_meetings.id", ondelete="CASCADE"), index=True
    )
    nhs_number: Mapped[str] = mapped_column(String(10), index=True)
    position: Mapped[int] = mapped_column(Integer, default=0)
    # lead_assigned | plan_started | plan_reviewed | not_appropriate (null until discussed)
    outcome: Mapped[str | None] = mapped_column(String(30))
    outcome_reason: Mapped[str | None] = mapped_column(Text)
    outcome_recorded_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    outcome_recorded_by: Mapped[str | None] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer, default=1)


class AuditEvent(Base):
    """Append-only and hash-chained: who (username, role) did what to which entity, when, with before/after."""

    __tablename__ = "audit_events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    username: Mapped[str] = mapped_column(String(64), index=True)
    role: Mapped[str] = mapped_column(String(20))
    action: Mapped[str] = mapped_column(String(40), index=True)
    entity: Mapped[str] = mapped_column(String(40))
    entity_id: Mapped[str | None] = mapped_column(String(64), index=True)
    before: Mapped[dict | None] = mapped_column(JSON)
    after: Mapped[dict | None] = mapped_column(JSON)
    detail: Mapped[str | None] = mapped_column(Text)
    # The hash chain (app/services/audit.py): the previous row's row_hash, and sha256 of it plus this
    # row's content. NULL only on a row written behind the application's back.
    previous_hash: Mapped[str | None] = mapped_column(String(64))
    row_hash: Mapped[str | None] = mapped_column(String(64))
