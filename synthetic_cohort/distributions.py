"""The shape of each person's yearly use, not only its mean: tails, frequent attenders, regression
to the mean and the relationships a risk tool lives on, measured from a records folder for
`proactive-care cohort validate` (targets and sources in the profile's [targets]).

Everything is counted from the records alone: people on the list on 1 January of a year and their
encounters in that calendar year; the plausible-maximum checks look at every 12-month window of
the whole record, since the app's reasons quote counts over the 12 months before any index date.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from features.conditions import CONDITION_CODES, ENCOUNTER_KINDS

MENTAL = ("dementia", "depression", "smi", "learning_disability")
PHYSICAL = tuple(code for code in CONDITION_CODES if code not in MENTAL)
CENTILES = (("median", 50.0), ("99th", 99.0), ("99.9th", 99.9), ("maximum", 100.0))
WINDOW_DAYS = 365
EPOCH = np.datetime64("1970-01-01", "D")


@dataclass
class Use:
    """Yearly counts of every encounter kind for the people on the list on 1 January of the last
    year (``this_year``) and of the year before (``last_year``), and the most any person had in one
    12-month window of the whole record."""
    year: int
    this_year: pd.DataFrame    # index nhs_number (int key); one column per encounter kind
    last_year: pd.DataFrame    # the same for the year before, its own list on its 1 January
    window_maximum: dict[str, tuple[int, int]]  # kind -> (count, person key)
    readmission_percent: float = float("nan")   # emergency admissions in the last year within 30 days of another


def _day(timestamp: pd.Timestamp) -> int:
    return int((np.datetime64(timestamp.date(), "D") - EPOCH).astype(int))


def read_use(directory, year: int, people_this_year: pd.Index, people_last_year: pd.Index) -> Use:
    """Counts per person and kind; the people are integer NHS-number keys."""
    table = pq.read_table(directory / "encounters.parquet", columns=["nhs_number", "date", "kind"])
    keys = pc.cast(table.column("nhs_number"), pa.int64()).to_numpy()
    days = pc.cast(pc.cast(table.column("date"), pa.timestamp("s")), pa.int64()).to_numpy() // 86_400
    kinds = pc.fill_null(pc.index_in(table.column("kind"), value_set=pa.array(ENCOUNTER_KINDS)), -1).to_numpy()
    del table
    frames = {}
    for label, first, people in (("this", year, people_this_year), ("last", year - 1, people_last_year)):
        lo, hi = _day(pd.Timestamp(first, 1, 1)), _day(pd.Timestamp(first + 1, 1, 1))
        in_year = (days >= lo) & (days < hi)
        columns = {}
        for k, kind in enumerate(ENCOUNTER_KINDS):
            counts = pd.Series(keys[in_year & (kinds == k)]).value_counts()
            columns[kind] = counts.reindex(people, fill_value=0).to_numpy()
        frames[label] = pd.DataFrame(columns, index=people)
    maximum = {}
    for k, kind in enumerate(ENCOUNTER_KINDS):
        mask = kinds == k
        maximum[kind] = _most_in_any_window(keys[mask], days[mask])
    emergency = kinds == ENCOUNTER_KINDS.index("emergency_admission")
    readmissions = _readmission_percent(keys[emergency], days[emergency], _day(pd.Timestamp(year, 1, 1)))
    return Use(year, frames["this"], frames["last"], maximum, readmissions)


def _readmission_percent(keys: np.ndarray, days: np.ndarray, first_day: int) -> float:
    """Percent of emergency admissions from ``first_day`` on that came 1-30 days after the same
    person's previous one (the NHS Outcomes Framework's 30-day emergency readmission, roughly)."""
    order = np.lexsort((days, keys))
    keys, days = keys[order], days[order]
    after = (keys[1:] == keys[:-1]) & (days[1:] - days[:-1] >= 1) & (days[1:] - days[:-1] <= 30)
    counted = days[1:] >= first_day
    total = int((days >= first_day).sum())
    return 100 * float(after[counted].sum()) / total if total else float("nan")


def _most_in_any_window(keys: np.ndarray, days: np.ndarray) -> tuple[int, int]:
    """(count, person) for the most events one person has in any WINDOW_DAYS-day window."""
    if keys.size == 0:
        return 0, -1
    offset = days - days.min()
    combined = keys.astype(np.int64) * (1 << 22) + offset  # person-major, then day (records span < 11,000 years)
    if np.any(combined[1:] < combined[:-1]):
        combined = np.sort(combined)
    window_end = np.searchsorted(combined, combined + WINDOW_DAYS, side="left")
    within = window_end - np.arange(combined.size)
    best = int(np.argmax(within))
    return int(within[best]), int(combined[best] >> 22)


def centiles(values) -> dict[str, float]:
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return {name: float("nan") for name, _ in CENTILES}
    return {name: float(np.percentile(values, q)) for name, q in CENTILES}


def top_share(counts, fraction: float) -> float:
    """Percent of all events that the ``fraction`` of people with the most events account for."""
    counts = np.sort(np.asarray(counts, dtype=float))[::-1]
    total = counts.sum()
    if total == 0:
        return float("nan")
    return 100 * counts[: max(int(round(fraction * counts.size)), 1)].sum() / total


def frequent_attendance(counts) -> dict[str, float]:
    """Among people with at least one attendance (Greenfield 2020's denominator): the share who
    attended once, 3+, 6+ and 10+ times, and the share of attendances made by 3+ and 6+ attenders."""
    attended = np.asarray(counts, dtype=float)
    attended = attended[attended > 0]
    if attended.size == 0:
        return {}
    total = attended.sum()
    out = {"attending_once_percent": 100 * float(np.mean(attended == 1))}
    for n in (3, 6, 10):
        out[f"{n}_plus_percent"] = 100 * float(np.mean(attended >= n))
        out[f"attendances_by_{n}_plus_percent"] = 100 * float(attended[attended >= n].sum() / total)
    return out


def mantel_haenszel_odds_ratio(exposed: np.ndarray, outcome: np.ndarray, strata: np.ndarray) -> float:
    """Odds ratio of the outcome for exposed vs unexposed, pooled over strata (Mantel-Haenszel)."""
    frame = pd.DataFrame({"s": strata, "e": exposed.astype(bool), "y": outcome.astype(bool)})
    cells = frame.groupby(["s", "e", "y"]).size().unstack(["e", "y"], fill_value=0)
    for column in [(e, y) for e in (False, True) for y in (False, True)]:
        if column not in cells.columns:
            cells[column] = 0
    a, b = cells[(True, True)], cells[(True, False)]
    c, d = cells[(False, True)], cells[(False, False)]
    n = a + b + c + d
    numerator, denominator = (a * d / n.where(n > 0)).sum(), (b * c / n.where(n > 0)).sum()
    return float(numerator / denominator) if denominator > 0 else float("nan")


def onset_years_earlier(age: pd.Series, multimorbid: pd.Series, deprived: pd.Series, affluent: pd.Series,
                        anchors=(50, 55, 60, 65, 70)) -> float:
    """How many years earlier the deprived group reaches the share with 2+ conditions that the
    affluent group has at each anchor age (Barnett 2012's "onset 10-15 years earlier"), averaged."""
    edges = np.arange(20, 95, 5)
    mid = edges[:-1] + 2.5

    def curve(group: pd.Series) -> np.ndarray:
        band = pd.cut(age[group], edges, right=False)
        share = multimorbid[group].groupby(band, observed=False).mean().to_numpy(dtype=float)
        return np.maximum.accumulate(np.nan_to_num(share))

    deprived_curve, affluent_curve = curve(deprived), curve(affluent)
    shifts = []
    for anchor in anchors:
        level = np.interp(anchor, mid, affluent_curve)
        reached = np.nonzero(deprived_curve >= level)[0]
        if reached.size == 0 or reached[0] == 0:
            continue
        i = reached[0]  # interpolate between the band before and the first band at the level
        lo, hi = deprived_curve[i - 1], deprived_curve[i]
        age_reached = mid[i - 1] + (level - lo) / max(hi - lo, 1e-12) * 5.0
        shifts.append(anchor - age_reached)
    return float(np.mean(shifts)) if shifts else float("nan")


def use_measures(people: pd.DataFrame, last_age: pd.Series, use: Use, exposure: pd.Series) -> dict[str, float]:
    """Every distribution and relationship measure, by the names of the profile's [targets].
    ``people`` is the list on 1 January of the last year (age, female, imd, ltc_*, n_ltc,
    repeat_medicines), ``last_age`` the ages of the year before's list, ``exposure`` years on
    the list in the last year."""
    out: dict[str, float] = {}
    now, before = use.this_year, use.last_year
    age = people["age"]
    gp = now["gp_consultation"]
    for percent in (1, 3, 10):
        out[f"gp_appointments_share_top_{percent}_percent"] = top_share(gp, percent / 100)
    for name, value in frequent_attendance(now["ae_attendance"]).items():
        out[f"ae_attenders_{name}"] = value
    ae_rate = now["ae_attendance"].groupby(people["imd"]).sum() / exposure.groupby(people["imd"]).sum()
    out["ae_attendances_most_to_least_deprived_decile"] = float(ae_rate.get(1.0, np.nan) / ae_rate.get(10.0, np.nan))
    # Roland 2005: people 65+ with 2+ emergency admissions, their share of this year's and next year's
    old_before = last_age.index[last_age >= 65]
    admitted_before = before.loc[old_before, "emergency_admission"]
    frequent = admitted_before.index[admitted_before >= 2]
    out["admissions_65_plus_by_people_with_2_plus_percent"] = 100 * admitted_before[frequent].sum() / max(admitted_before.sum(), 1)
    admitted_now = now.loc[age.index[age >= 65], "emergency_admission"]
    next_year = now["emergency_admission"].reindex(frequent, fill_value=0).sum()
    out["admissions_65_plus_next_year_by_previous_2_plus_percent"] = 100 * next_year / max(admitted_now.sum(), 1)
    out["emergency_readmissions_within_30_days_percent"] = use.readmission_percent
    # regression to the mean in general practice: the top 3% of attenders one year, the next
    both = before.index.intersection(now.index)
    ranked = before.loc[both, "gp_consultation"].sort_values(ascending=False, kind="stable")
    top = ranked.index[: max(int(round(0.03 * len(ranked))), 1)]
    out["gp_top_3_percent_fewer_next_year_percent"] = 100 * float(
        (now.loc[top, "gp_consultation"] < before.loc[top, "gp_consultation"]).mean())
    # emergency admission by number of physical conditions (Payne 2013), adults 20+
    adults = people.index[age >= 20]
    physical = people.loc[adults, [f"ltc_{code}" for code in PHYSICAL]].sum(axis=1)
    compared = physical.index[(physical == 0) | (physical >= 4)]
    strata = ((age[compared] // 5).astype(int).astype(str) + people.loc[compared, "female"].astype(str)
              + ((people.loc[compared, "imd"] - 1) // 2).astype(str))
    out["admission_odds_ratio_4_plus_vs_no_physical_conditions"] = mantel_haenszel_odds_ratio(
        (physical[compared] >= 4).to_numpy(), (now.loc[compared, "emergency_admission"] > 0).to_numpy(), strata.to_numpy())
    # emergency admission by number of regular medicines, conditions held equal (Payne 2014), adults 20+
    medicines = people.loc[adults, "repeat_medicines"]
    banded = medicines.index[medicines.between(1, 3) | (medicines >= 10)]
    strata = ((age[banded] // 5).astype(int).astype(str) + people.loc[banded, "female"].astype(str)
              + np.minimum(people.loc[banded, "n_ltc"], 4).astype(str))
    out["admission_odds_ratio_10_plus_vs_1_3_medicines"] = mantel_haenszel_odds_ratio(
        (medicines[banded] >= 10).to_numpy(), (now.loc[banded, "emergency_admission"] > 0).to_numpy(), strata.to_numpy())
    # conditions per person (Kingston 2018) and how early multimorbidity starts (Barnett 2012)
    n = people["n_ltc"]
    out["conditions_2_plus_percent_65_74"] = 100 * float((n[(age >= 65) & (age < 75)] >= 2).mean())
    out["conditions_4_plus_percent_65_plus"] = 100 * float((n[age >= 65] >= 4).mean())
    quintile = (people["imd"] - 1) // 2
    out["multimorbidity_onset_years_earlier_most_deprived_fifth"] = onset_years_earlier(
        age, n >= 2, quintile == 0, quintile == 4)
    # repeat medicines (Payne 2014)
    medicines = people["repeat_medicines"]
    out["repeat_medicines_10_plus_percent_adults"] = 100 * float((medicines[age >= 18] >= 10).mean())
    out["repeat_medicines_10_plus_percent_80_plus"] = 100 * float((medicines[age >= 80] >= 10).mean())
    # plausible maxima: the most in any 12 months of the record, and repeat medicines on 1 January
    for kind, (count, _) in use.window_maximum.items():
        out[f"most_in_any_12_months_{kind}"] = float(count)
    out["most_repeat_medicines"] = float(medicines.max())
    return out


def centile_table(people: pd.DataFrame, use: Use) -> dict[str, dict[str, float]]:
    """Median, 99th, 99.9th centile and maximum of each per-person count in the last year."""
    table = {kind: centiles(use.this_year[kind]) for kind in ENCOUNTER_KINDS}
    table["repeat_medicines"] = centiles(people["repeat_medicines"][people["age"] >= 18])
    table["conditions"] = centiles(people["n_ltc"])
    return table
