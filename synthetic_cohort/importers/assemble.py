"""From another system's rows (already read from CSV or FHIR) to our records and a mapping report.

Both readers hand over the same ``SourceTables``: plain text fields named alike, each row
carrying where it came from (file, row) so every problem can say exactly where it is. Everything
that decides what a row *means* lives here, once, for both routes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd
import pandera.errors

from features.records import SCHEMAS, Records, validate_records
from synthetic_cohort.importers.mappings import ADMISSION, Mappings, left_out_reason, load_mappings
from synthetic_cohort.importers.nhs_numbers import assign_nhs_numbers
from synthetic_cohort.importers.problems import ProblemLog

# Location columns every source frame carries.
FILE, ROW = "_file", "_row"
SNOMED_SYSTEMS = {"", "SNOMED-CT", "SNOMED CT", "SCT", "http://snomed.info/sct"}
# A prescription lasting this long, or still running, is a repeat medicine.
REPEAT_MEDICINE_MIN_DAYS = 28


@dataclass
class SourceTables:
    """Rows read from a source, text as found (None when empty).

    - people: source_id, given_name, family_name, birth_date, death_date, sex (F/M expected),
      race (Synthea race word)
    - conditions: patient, code, description, system, start
    - encounters: patient, date, encounter_class (Synthea class), code, reason_code, organisation
    - medications (optional): patient, code, start, stop
    - organisations (optional): source_id, name
    ``columns[table][field]`` names the source column (or FHIR path) for problem reports.
    """

    source_format: str
    people: pd.DataFrame
    conditions: pd.DataFrame
    encounters: pd.DataFrame
    medications: pd.DataFrame | None = None
    organisations: pd.DataFrame | None = None
    columns: dict[str, dict[str, str]] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)  # rows a reader set aside, and why


@dataclass(frozen=True)
class ImportOptions:
    practice_code: str = "IMP001"
    practice_name: str = "Imported practice"
    pcn_code: str = "IMPPCN"
    pcn_name: str = "Imported primary care network"
    avoid_nhs_numbers: frozenset[str] = frozenset()  # numbers another population already holds


def parse_dates(
    frame: pd.DataFrame, field_name: str, table: str, source: SourceTables, log: ProblemLog,
    required: bool,
) -> pd.Series:
    """Day-precision dates from ISO 8601 text (date or date-time); the calendar date as written.

    Unparseable text (and missing text when ``required``) is logged with file, row and column.
    """
    text = frame[field_name].fillna("").astype(str).str.strip()
    present = text != ""
    whole = pd.to_datetime(text.where(present), format="ISO8601", utc=True, errors="coerce")
    day = pd.to_datetime(text.str[:10].where(present), format="%Y-%m-%d", errors="coerce")
    bad = present & (whole.isna() | day.isna())
    missing = ~present if required else pd.Series(False, index=frame.index)
    column = source.columns.get(table, {}).get(field_name, field_name)
    for index in frame.index[bad | missing]:
        message = (
            f"{text[index]!r} is not a date (expected YYYY-MM-DD or an ISO 8601 date-time)"
            if bad[index]
            else "a date is required here but the field is empty"
        )
        log.add(frame.at[index, FILE], frame.at[index, ROW], column, message)
    return day.where(~bad).astype("datetime64[ns]")


def _log_rows(
    frame: pd.DataFrame, mask: pd.Series, column: str, log: ProblemLog, message
) -> None:
    for index in frame.index[mask]:
        log.add(frame.at[index, FILE], frame.at[index, ROW], column, message(frame.loc[index]))


def _known_patients(
    frame: pd.DataFrame, table: str, people_ids: pd.Index, source: SourceTables, log: ProblemLog
) -> pd.Series:
    known = frame["patient"].isin(people_ids)
    column = source.columns.get(table, {}).get("patient", "patient")
    _log_rows(frame, ~known, column, log,
              lambda row: f"refers to patient {row['patient']!r}, who is not in the patients")
    return known


def _people(source: SourceTables, log: ProblemLog, mappings: Mappings) -> pd.DataFrame:
    people = source.people
    columns = source.columns.get("people", {})
    duplicated = people["source_id"].duplicated(keep="first")
    _log_rows(people, duplicated, columns.get("source_id", "source_id"), log,
              lambda row: f"patient {row['source_id']!r} appears more than once")
    empty_id = people["source_id"].fillna("").eq("")
    _log_rows(people, empty_id, columns.get("source_id", "source_id"), log,
              lambda row: "the patient has no Id")
    bad_sex = ~people["sex"].isin(["F", "M"])
    _log_rows(people, bad_sex, columns.get("sex", "sex"), log,
              lambda row: f"sex {row['sex']!r} is not F or M, the only values our records hold")
    frame = people.assign(
        birth_date=parse_dates(people, "birth_date", "people", source, log, required=True),
        death_date=parse_dates(people, "death_date", "people", source, log, required=False),
        ethnicity=people["race"].str.lower().map(mappings.race_to_ons),
    )
    return frame.loc[~duplicated & ~empty_id]


def _conditions_report(conditions: pd.DataFrame, mappings: Mappings) -> list[dict]:
    report = []
    grouped = conditions.groupby("code", sort=False)
    for code, rows in grouped:
        description = rows["description"].dropna().iloc[0] if rows["description"].notna().any() else ""
        ltc = rows["ltc_code"].iloc[0]
        entry = {
            "code": code,
            "description": description,
            "rows": int(len(rows)),
            "people": int(rows["patient"].nunique()),
        }
        if ltc:
            entry.update(fate="mapped", ltc_code=ltc, reason=mappings.snomed_notes.get(code, ""))
        else:
            non_snomed = rows["system"].fillna("").map(lambda s: s not in SNOMED_SYSTEMS).all()
            reason = (
                f"not a SNOMED CT code (system {rows['system'].iloc[0]})"
                if non_snomed
                else left_out_reason(code, description, mappings)
            )
            entry.update(fate="left out", ltc_code=None, reason=reason)
        report.append(entry)
    return sorted(report, key=lambda e: (e["fate"] != "mapped", -e["rows"], e["code"]))


def _mapped_conditions(conditions: pd.DataFrame, mappings: Mappings) -> pd.DataFrame:
    is_snomed = conditions["system"].fillna("").isin(SNOMED_SYSTEMS)
    conditions = conditions.assign(
        ltc_code=conditions["code"].map(mappings.snomed_to_ltc).fillna("").where(is_snomed, "")
    )
    return conditions


def _encounter_kinds(encounters: pd.DataFrame, mappings: Mappings) -> pd.Series:
    """Our kind per encounter ("" = left out); admissions decided by the emergency rule."""
    kind = encounters["encounter_class"].map(mappings.class_to_kind)
    admission = kind == ADMISSION
    attendances = encounters.loc[kind == "ae_attendance", ["patient", "date"]]
    # An A&E attendance on the day of admission or the day before makes it an emergency.
    emergency_days = pd.concat(
        [attendances, attendances.assign(date=attendances["date"] + pd.Timedelta(days=1))]
    ).drop_duplicates()
    admissions = encounters.loc[admission, ["patient", "date"]].reset_index()
    after_attendance = admissions.merge(emergency_days, on=["patient", "date"], how="inner")["index"]
    urgent = encounters["code"].isin(mappings.urgent_codes) | encounters["reason_code"].isin(
        mappings.urgent_codes
    )
    emergency = admission & (encounters.index.isin(after_attendance) | urgent)
    kind = kind.mask(admission, "elective_admission").mask(emergency, "emergency_admission")
    return kind


def repeat_medicine_counts(medications: pd.DataFrame, people: pd.DataFrame) -> pd.DataFrame:
    """Observations ``repeat_medicines``: the count of distinct repeat medicines after each change.

    A repeat medicine is a prescription still running or lasting at least 28 days; overlapping
    courses of one medicine count once. Everyone starts at 0 on their date of birth, so a
    person with no repeat medicines reads 0 (known none) rather than unknown.
    """
    meds = medications.dropna(subset=["start"])
    open_end = pd.Timestamp("2200-01-01")  # stands in for "still running"
    stop = meds["stop"].fillna(open_end)
    repeat = meds["stop"].isna() | ((stop - meds["start"]).dt.days >= REPEAT_MEDICINE_MIN_DAYS)
    courses = (
        pd.DataFrame({"patient": meds["patient"], "code": meds["code"],
                      "start": meds["start"], "stop": stop})
        .loc[repeat]
        .sort_values(["patient", "code", "start"])
    )
    # Merge overlapping courses of one medicine: a new block starts after the previous ones end.
    medicine = [courses["patient"], courses["code"]]
    ended_before = courses["stop"].groupby(medicine).cummax().groupby(medicine).shift()
    new_block = ended_before.isna() | (courses["start"] > ended_before)
    courses["block"] = new_block.cumsum()
    blocks = courses.groupby("block").agg(patient=("patient", "first"), start=("start", "min"),
                                          stop=("stop", "max"))
    starts = blocks[["patient", "start"]].rename(columns={"start": "date"}).assign(change=1)
    ends = blocks.loc[blocks["stop"] < open_end, ["patient", "stop"]]
    ends = ends.rename(columns={"stop": "date"}).assign(change=-1)
    births = people[["source_id", "birth_date"]].rename(
        columns={"source_id": "patient", "birth_date": "date"}
    ).assign(change=0)
    changes = (
        pd.concat([births, starts, ends])
        .groupby(["patient", "date"], as_index=False)["change"].sum()
        .sort_values(["patient", "date"])
    )
    changes["value"] = changes.groupby("patient")["change"].cumsum().astype(float)
    return changes[["patient", "date", "value"]]


def _practices(
    source: SourceTables, people: pd.DataFrame, encounters: pd.DataFrame, options: ImportOptions
) -> tuple[pd.Series, pd.DataFrame]:
    """Each person's practice code and the practices table.

    Without an organisations table everyone joins the one imported practice. With one, a
    person's practice is the organisation of most of their primary-care (gp_consultation)
    encounters, the latest breaking ties; people with none stay in the imported practice.
    """
    practice_of = pd.Series(options.practice_code, index=people["source_id"].to_numpy())
    names = {options.practice_code: options.practice_name}
    organisations = source.organisations
    if organisations is not None and "organisation" in encounters:
        primary = encounters.loc[
            (encounters["kind"] == "gp_consultation")
            & encounters["organisation"].isin(organisations["source_id"]),
            ["patient", "organisation", "date"],
        ]
        usual = (
            primary.groupby(["patient", "organisation"], as_index=False)
            .agg(visits=("date", "size"), latest=("date", "max"))
            .sort_values(["patient", "visits", "latest"], ascending=[True, False, False])
            .drop_duplicates("patient")
        )
        used = sorted(usual["organisation"].unique())
        codes = {org: f"{options.practice_code[:3]}{number:03d}" for number, org in enumerate(used, 2)}
        org_names = dict(zip(organisations["source_id"], organisations["name"]))
        practice_of.loc[usual["patient"].to_numpy()] = usual["organisation"].map(codes).to_numpy()
        names.update({code: org_names.get(org) or f"Organisation {org}" for org, code in codes.items()})
    in_use = sorted(set(practice_of))
    practices = pd.DataFrame(
        {
            "practice_code": in_use,
            "practice_name": [names[code] for code in in_use],
            "pcn_code": options.pcn_code,
            "pcn_name": options.pcn_name,
        }
    )
    return practice_of, practices


def _coerced(table: str, frame: pd.DataFrame) -> pd.DataFrame:
    """The frame with the records schema's column types; as it was if a value cannot take its type
    (``validate_records`` then reports that value with the rest)."""
    try:
        return SCHEMAS[table].coerce_dtype(frame)
    except (pandera.errors.SchemaError, pandera.errors.SchemaErrors):
        return frame


def assemble(
    source: SourceTables, log: ProblemLog, options: ImportOptions = ImportOptions()
) -> tuple[Records, dict]:
    """Records and a mapping report, or problems in ``log`` (the caller raises them)."""
    mappings = load_mappings()
    people = _people(source, log, mappings)
    people_ids = pd.Index(people["source_id"])

    conditions = source.conditions
    conditions = conditions.assign(
        start=parse_dates(conditions, "start", "conditions", source, log, required=True)
    )
    no_code = conditions["code"].fillna("").eq("")
    _log_rows(conditions, no_code, source.columns.get("conditions", {}).get("code", "code"), log,
              lambda row: "the condition has no code")
    conditions = conditions.loc[
        _known_patients(conditions, "conditions", people_ids, source, log) & ~no_code
    ]
    conditions = _mapped_conditions(conditions, mappings)

    encounters = source.encounters
    encounters = encounters.assign(
        date=parse_dates(encounters, "date", "encounters", source, log, required=True)
    )
    known_class = encounters["encounter_class"].isin(mappings.class_to_kind)
    class_column = source.columns.get("encounters", {}).get("encounter_class", "encounter_class")
    _log_rows(encounters, ~known_class, class_column, log,
              lambda row: f"unknown encounter class {row['encounter_class']!r} "
              f"(known: {', '.join(sorted(mappings.class_to_kind))})")
    encounters = encounters.loc[
        _known_patients(encounters, "encounters", people_ids, source, log) & known_class
    ]
    encounters = encounters.assign(kind=_encounter_kinds(encounters, mappings))
    # Synthea certifies a death in an encounter days later: not a contact with the living person,
    # and the records refuse events after death, so these are left out and counted.
    after_death = encounters["date"] > encounters["patient"].map(people.set_index("source_id")["death_date"])
    if after_death.any():
        encounters = encounters.assign(kind=encounters["kind"].mask(after_death, ""))
        source.skipped = {**source.skipped,
                          "encounters dated after the patient's death (e.g. death certification)": int(after_death.sum())}

    medications = source.medications
    if medications is not None:
        medications = medications.assign(
            start=parse_dates(medications, "start", "medications", source, log, required=True),
            stop=parse_dates(medications, "stop", "medications", source, log, required=False),
        )
        medications = medications.loc[
            _known_patients(medications, "medications", people_ids, source, log)
        ]
    births = people.set_index("source_id")["birth_date"]
    for table, frame, field_name in (
        ("conditions", conditions, "start"), ("encounters", encounters, "date"),
        ("medications", medications, "start"),
    ):
        if frame is not None:
            before_birth = frame[field_name] < frame["patient"].map(births)
            _log_rows(frame, before_birth, source.columns.get(table, {}).get(field_name, field_name),
                      log, lambda row, f=field_name: f"{row[f]:%Y-%m-%d} is before the patient's birth "
                      f"({births[row['patient']]:%Y-%m-%d})")
    if log.problems:
        return None, {}

    numbers = assign_nhs_numbers(people["source_id"], options.avoid_nhs_numbers)
    practice_of, practices = _practices(source, people, encounters, options)
    patients = pd.DataFrame(
        {
            "nhs_number": people["source_id"].map(numbers),
            "given_name": people["given_name"],
            "family_name": people["family_name"],
            "date_of_birth": people["birth_date"],
            "sex": people["sex"],
            "ethnicity": people["ethnicity"],
            "imd_decile": pd.array([pd.NA] * len(people), dtype="Int64"),  # unknown, never invented
            "practice_code": people["source_id"].map(practice_of),
            "pcn_code": options.pcn_code,
            # Synthea simulates each life from birth, so the whole record is the practice's.
            "registered_from": people["birth_date"],
            "registered_to": pd.Series(pd.NaT, index=people.index, dtype="datetime64[ns]"),
            "date_of_death": people["death_date"],
            "care_home": False,  # Synthea does not record where people live
        }
    ).sort_values("nhs_number", ignore_index=True)

    mapped = conditions.loc[conditions["ltc_code"] != ""]
    condition_rows = (
        pd.DataFrame(
            {
                "nhs_number": mapped["patient"].map(numbers),
                "condition": mapped["ltc_code"],
                "diagnosed_on": mapped["start"],
            }
        )
        .sort_values(["nhs_number", "condition", "diagnosed_on"])
        .drop_duplicates(["nhs_number", "condition"])  # a condition counts from first diagnosis
        .reset_index(drop=True)
    )
    kept = encounters.loc[encounters["kind"].fillna("") != ""]
    encounter_rows = (
        pd.DataFrame(
            {"nhs_number": kept["patient"].map(numbers), "date": kept["date"], "kind": kept["kind"]}
        )
        .sort_values(["nhs_number", "date", "kind"])
        .reset_index(drop=True)
    )
    observations = None
    if medications is not None:
        counts = repeat_medicine_counts(medications, people)
        observations = (
            pd.DataFrame(
                {
                    "nhs_number": counts["patient"].map(numbers),
                    "date": counts["date"],
                    "code": "repeat_medicines",
                    "value": counts["value"],
                }
            )
            .sort_values(["nhs_number", "date"])
            .reset_index(drop=True)
        )

    tables = {
        "patients": patients,
        "practices": practices,
        "conditions": condition_rows,
        "encounters": encounter_rows,
    }
    if observations is not None:
        tables["observations"] = observations
    records = Records(**{name: _coerced(name, frame) for name, frame in tables.items()})
    # The loader's own checks, once (schemas, then dates before birth, after death or in the
    # future, ...): an import that would be refused at loading is refused here.
    for problem in validate_records(records):
        log.add(f"output {problem.file}", problem.row and f"row {problem.row}", problem.column,
                problem.message)
    if log.problems:
        return None, {}
    report = _report(source, people, conditions, encounters, medications, observations,
                     practices, practice_of, mappings)
    return records, report


def _report(source, people, conditions, encounters, medications, observations, practices,
            practice_of, mappings: Mappings) -> dict:
    classes = []
    for encounter_class, rows in encounters.groupby("encounter_class"):
        kinds = rows["kind"].fillna("").value_counts()
        classes.append(
            {
                "class": encounter_class,
                "fate": "left out" if set(kinds.index) == {""} else "mapped",
                "kinds": {kind: int(n) for kind, n in kinds.items() if kind},
                "rows": int(len(rows)),
                "note": mappings.class_notes.get(encounter_class, ""),
            }
        )
    race = people["race"].fillna("(none)")
    ethnicity = (
        pd.DataFrame({"race": race, "ons_group": people["ethnicity"].fillna("unknown")})
        .value_counts()
        .reset_index(name="people")
    )
    return {
        "format": source.source_format,
        "people": int(len(people)),
        "people_with_unknown_ethnicity": int(people["ethnicity"].isna().sum()),
        "people_with_unknown_imd": int(len(people)),
        "imd": "unknown for everyone: the source carries no English deprivation index",
        "conditions": _conditions_report(conditions, mappings),
        "condition_rows_mapped": int((conditions["ltc_code"] != "").sum()),
        "condition_rows_left_out": int((conditions["ltc_code"] == "").sum()),
        "encounter_classes": sorted(classes, key=lambda c: -c["rows"]),
        "encounter_kinds": {
            kind: int(n) for kind, n in encounters["kind"].fillna("").value_counts().items() if kind
        },
        "ethnicity": ethnicity.to_dict(orient="records"),
        "skipped": source.skipped,
        "medication_rows": None if medications is None else int(len(medications)),
        "repeat_medicine_observations": None if observations is None else int(len(observations)),
        "practices": [
            {**row, "people": int((practice_of == row["practice_code"]).sum())}
            for row in practices.to_dict(orient="records")
        ],
    }
