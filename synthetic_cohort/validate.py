"""`proactive-care cohort validate DIR`: the generated records against the published figures in the
profile ([targets.*] and the conditions' prevalence), as a table, JSON and an HTML report with plots.

Everything is measured from the records alone (as a user of the tool would), on 1 January of the
last year covered, and hospital use and deaths over that year.
"""

from __future__ import annotations

import base64
import html
import io
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from sklearn.metrics import roc_auc_score

from features.conditions import CONDITION_CODES, CONDITION_LABELS
from features.errors import UserInputError
from features.records import nhs_number_keys
from synthetic_cohort.distributions import Use, centile_table, read_use, use_measures
from synthetic_cohort.generate import GENERATION_FILE
from synthetic_cohort.profile import load_profile

MENTAL = {"dementia", "depression", "smi", "learning_disability"}
ADMISSION_BANDS = {"0_19": (0, 20), "20_37": (20, 38), "38_52": (38, 53), "53_66": (53, 67), "67_plus": (67, 200),
                   "85_plus": (85, 200), "all_ages": (0, 200)}
EFI_CATEGORIES = ("fit", "mild", "moderate", "severe")
EFI_CUTS = (0.12, 0.24, 0.36)
# Contact kinds with a published rate per person-year (encounter kind -> measure name).
CONTACT_KINDS = {"gp_consultation": "gp_appointments", "outpatient": "outpatient_attendances",
                 "ae_attendance": "ae_attendances"}
AGE_BANDS = [0, 18, 30, 40, 50, 60, 70, 80, 90, 200]
AGE_LABELS = ["0-17", "18-29", "30-39", "40-49", "50-59", "60-69", "70-79", "80-89", "90+"]


AT_MOST = "at most"  # a target that is a ceiling ("fewer than"), not a value ± tolerance
PLAUSIBLE_MAXIMUM = "plausible maximum"  # a ceiling on one person's count: above it the records are wrong


@dataclass
class Check:
    name: str
    target: float
    value: float
    tolerance: float
    source: str
    comparison: str = "within"

    @property
    def passed(self) -> bool:
        if not np.isfinite(self.value):
            return False
        if self.comparison in (AT_MOST, PLAUSIBLE_MAXIMUM):
            return bool(self.value <= self.target + 1e-12)
        return bool(abs(self.value - self.target) <= self.tolerance + 1e-12)

    @property
    def allowed(self) -> str:
        return "at most" if self.comparison in (AT_MOST, PLAUSIBLE_MAXIMUM) else "±" + _fmt(self.tolerance)


@dataclass
class Report:
    profile: str
    directory: str
    checks: list[Check]
    json_path: str = ""
    html_path: str = ""
    notes: list[str] = field(default_factory=list)
    centiles: dict[str, dict[str, float]] = field(default_factory=dict)  # count -> median, 99th, 99.9th, maximum
    centile_year: int = 0
    implausible_people: list[str] = field(default_factory=list)  # one sentence per exceeded plausible maximum

    @property
    def measured(self) -> int:
        return len(self.checks)

    @property
    def passed(self) -> int:
        return sum(c.passed for c in self.checks)

    @property
    def pass_share(self) -> float:
        return self.passed / max(self.measured, 1)

    def failures(self) -> list[Check]:
        return [c for c in self.checks if not c.passed]

    def implausible(self) -> list[Check]:
        """Plausible maxima exceeded: some person's count is one no clinician would believe."""
        return [c for c in self.failures() if c.comparison == PLAUSIBLE_MAXIMUM]

    def table_text(self) -> str:
        width = max(len(c.name) for c in self.checks)
        lines = [f"{'target':<{width}}  {'published':>10}  {'generated':>10}  {'tolerance':>9}  result"]
        for c in self.checks:
            lines.append(f"{c.name:<{width}}  {_fmt(c.target):>10}  {_fmt(c.value):>10}  {c.allowed:>9}  "
                         f"{'pass' if c.passed else 'FAIL'}")
        return "\n".join(lines)

    def centiles_text(self) -> str:
        """Per-person counts in the last year: median, 99th and 99.9th centile, maximum."""
        if not self.centiles:
            return ""
        width = max(len(name) for name in self.centiles)
        columns = list(next(iter(self.centiles.values())))
        lines = [f"Per person in {self.centile_year} (people on the list on 1 January; repeat medicines: adults)",
                 f"{'count':<{width}}  " + "  ".join(f"{c:>8}" for c in columns)]
        for name, values in self.centiles.items():
            lines.append(f"{name:<{width}}  " + "  ".join(f"{_fmt(values[c]):>8}" for c in columns))
        return "\n".join(lines)

    def to_json(self) -> dict:
        return {"profile": self.profile, "directory": self.directory, "measured": self.measured,
                "passed": self.passed, "pass_share": round(self.pass_share, 4), "notes": self.notes,
                "checks": [asdict(c) | {"passed": c.passed} for c in self.checks],
                "centiles": {"year": self.centile_year, "counts": self.centiles},
                "implausible": self.implausible_people}


def _fmt(x: float) -> str:
    if not np.isfinite(x):
        return "n/a"
    return f"{x:.4f}" if abs(x) < 0.1 else f"{x:.3g}" if abs(x) < 10 else f"{x:.1f}"


@dataclass
class Measured:
    """The population on 1 January of the last year and what happened to it in that year."""
    year: int
    people: pd.DataFrame           # indexed by nhs_number: age, female, imd, ethnicity, care_home, efi, ltc_*, n_ltc
    admissions: pd.Series          # emergency admissions in the year per person (people index)
    exposure: pd.Series            # years on the list in the year
    died: pd.Series                # died in the year
    truth: pd.Series | None        # generator's probability for the year
    contacts: dict[str, pd.Series]  # GP appointments and outpatient attendances in the year per person
    use: Use | None = None         # every encounter kind per person, this year and the year before
    last_age: pd.Series | None = None  # ages of the year before's list on its 1 January


def measure(directory: Path) -> Measured:
    patients = pd.read_parquet(directory / "patients.parquet")
    year = int(pd.read_parquet(directory / "truth.parquet", columns=["year"])["year"].max()) \
        if (directory / "truth.parquet").exists() else int(pd.to_datetime(
            pq.read_table(directory / "encounters.parquet", columns=["date"]).column("date").to_pandas()).max().year)
    jan1, next_jan1 = pd.Timestamp(year, 1, 1), pd.Timestamp(year + 1, 1, 1)
    on_list = _on_list(patients, jan1)
    people = patients.loc[on_list].set_index("nhs_number")
    frame = pd.DataFrame(index=people.index)
    frame["age"] = (jan1 - people["date_of_birth"]).dt.days / 365.25
    frame["female"] = people["sex"].eq("F")
    frame["imd"] = people["imd_decile"].astype(float)
    frame["ethnicity"] = people["ethnicity"]
    frame["care_home"] = people["care_home"].astype(bool)
    conditions = pd.read_parquet(directory / "conditions.parquet")
    conditions = conditions[(conditions["diagnosed_on"] <= jan1) & conditions["nhs_number"].isin(frame.index)]
    flags = pd.crosstab(conditions["nhs_number"], conditions["condition"]).clip(upper=1)
    flags = flags.reindex(index=frame.index, columns=list(CONDITION_CODES), fill_value=0)
    for code in CONDITION_CODES:
        frame[f"ltc_{code}"] = flags[code].to_numpy()
    frame["n_ltc"] = flags.sum(axis=1).to_numpy()
    frame["n_mental"] = flags[sorted(MENTAL)].sum(axis=1).to_numpy()
    observations = pd.read_parquet(directory / "observations.parquet", filters=[("date", "==", jan1)])
    for code in ("efi", "repeat_medicines"):
        of_code = observations.loc[observations["code"] == code]
        frame[code] = of_code.set_index("nhs_number")["value"].reindex(frame.index)
    last_jan1 = pd.Timestamp(year - 1, 1, 1)
    last_list = patients.loc[_on_list(patients, last_jan1)].set_index("nhs_number")
    last_age = (last_jan1 - last_list["date_of_birth"]).dt.days / 365.25
    use = read_use(directory, year, pd.Index(nhs_number_keys(pd.Series(frame.index))),
                   pd.Index(nhs_number_keys(pd.Series(last_list.index))))
    use.this_year.index, use.last_year.index = frame.index, last_list.index
    counts = {kind: use.this_year[kind] for kind in CONTACT_KINDS}
    admissions = use.this_year["emergency_admission"]
    leaves = people["registered_to"].fillna(next_jan1).clip(upper=next_jan1)
    exposure = (leaves - jan1).dt.days / (next_jan1 - jan1).days
    died = people["date_of_death"].between(jan1, next_jan1, inclusive="left")
    truth = None
    if (directory / "truth.parquet").exists():
        t = pd.read_parquet(directory / "truth.parquet", filters=[("year", "==", year)])
        truth = t.set_index("nhs_number")["probability"].reindex(frame.index)
    return Measured(year, frame, admissions, exposure, died, truth, counts, use, last_age)


def _implausible_people(report: Report, m: Measured) -> list[str]:
    """Who holds each count above its plausible maximum, in one sentence each."""
    sentences = []
    for check in report.implausible():
        kind = check.name.removeprefix("most in any 12 months ").replace(" ", "_")
        if m.use is not None and kind in m.use.window_maximum:
            count, key = m.use.window_maximum[kind]
            sentences.append(f"NHS number {key:010d} has {count} {kind.replace('_', ' ')}s in one 12-month window; "
                             f"more than {check.target:.0f} is not plausible.")
        elif "repeat_medicines" in m.people and kind == "most_repeat_medicines":
            person = m.people["repeat_medicines"].idxmax()
            sentences.append(f"NHS number {person} has {m.people.loc[person, 'repeat_medicines']:.0f} repeat medicines "
                             f"on 1 January {m.year}; more than {check.target:.0f} is not plausible.")
        else:
            sentences.append(f"{check.name}: {_fmt(check.value)}, more than the plausible {_fmt(check.target)}.")
    return sentences


def _on_list(patients: pd.DataFrame, day: pd.Timestamp) -> pd.Series:
    return ((patients["registered_from"] <= day) & (patients["registered_to"].isna() | (patients["registered_to"] > day))
            & (patients["date_of_death"].isna() | (patients["date_of_death"] > day)))


def _efi_category(efi: pd.Series) -> pd.Series:
    return pd.Series(np.searchsorted(EFI_CUTS, efi.to_numpy(), side="right"), index=efi.index)


def _rate(m: Measured, mask) -> float:
    return 1000 * m.admissions[mask].sum() / max(m.exposure[mask].sum(), 1e-9)


def measures(m: Measured) -> dict[str, float]:
    p = m.people
    age = p["age"]
    out: dict[str, float] = {
        "median_age": float(age.median()),
        "percent_65_plus": 100 * float((age >= 65).mean()),
        "percent_18_plus": 100 * float((age >= 18).mean()),
        "percent_50_plus": 100 * float((age >= 50).mean()),
        "percent_white": 100 * float(p["ethnicity"].eq("White").mean()),
        "percent_asian": 100 * float(p["ethnicity"].eq("Asian").mean()),
        "percent_imd_deciles_1_2": 100 * float(p["imd"].le(2).mean()),
        "percent_imd_deciles_3_4": 100 * float(p["imd"].between(3, 4).mean()),
    }
    two_plus = p["n_ltc"] >= 2
    out["multimorbidity_2plus_female_to_male"] = two_plus[p["female"]].mean() / two_plus[~p["female"]].mean()
    adult = age >= 18
    out["multimorbidity_2plus_adults_most_to_least_deprived_fifth"] = (
        two_plus[adult & (p["imd"] <= 2)].mean() / two_plus[adult & (p["imd"] >= 9)].mean())
    physical_mental = (p["n_mental"] >= 1) & (p["n_ltc"] - p["n_mental"] >= 1)
    out["physical_mental_most_to_least_deprived_decile"] = (
        physical_mental[p["imd"] == 1].mean() / physical_mental[p["imd"] == 10].mean())
    quintile = (p["imd"] - 1) // 2
    for name, (lo, hi) in ADMISSION_BANDS.items():
        band = (age >= lo) & (age < hi)
        if name == "all_ages":
            out[f"admissions_per_1000_{name}"] = _rate(m, band)
        else:  # directly standardised to England's deprivation mix (equal quintiles by definition)
            out[f"admissions_per_1000_{name}"] = float(np.mean(
                [_rate(m, band & (quintile == q)) for q in range(5) if (band & (quintile == q)).any()]))
        if name not in ("85_plus", "all_ages"):
            out[f"admission_ratio_most_to_least_quintile_{name}"] = (
                _rate(m, band & (p["imd"] <= 2)) / max(_rate(m, band & (p["imd"] >= 9)), 1e-9))
    for kind, name in CONTACT_KINDS.items():
        out[f"{name}_per_person_year"] = float(m.contacts[kind].sum() / max(m.exposure.sum(), 1e-9))
    out["percent_admissions_aged_65_plus"] = 100 * m.admissions[age >= 65].sum() / max(m.admissions.sum(), 1)
    old = age >= 65
    category = _efi_category(p["efi"].fillna(0))
    for k, name in enumerate(EFI_CATEGORIES):
        out[f"efi_{name}_percent_65_plus"] = 100 * float((category[old] == k).mean())
    # age-adjusted like Clegg's hazard ratios: observed / expected from 5-year age-band rates (65+)
    age_band = (age[old] // 5).astype(int)
    for outcome, events, exposure in (("admission", m.admissions[old], m.exposure[old]),
                                      ("death", m.died[old].astype(float), pd.Series(1.0, index=age_band.index))):
        band_rate = events.groupby(age_band).sum() / exposure.groupby(age_band).sum()
        expected = exposure * age_band.map(band_rate)
        standardised = [events[category[old] == k].sum() / max(expected[category[old] == k].sum(), 1e-9) for k in range(4)]
        for k, name in enumerate(EFI_CATEGORIES[1:], start=1):
            out[f"efi_{outcome}_ratio_{name}"] = standardised[k] / max(standardised[0], 1e-9)
    out["care_home_percent_65_plus"] = 100 * float(p["care_home"][old].mean())
    out["care_home_residents_percent_85_plus"] = 100 * float((age[p["care_home"]] >= 85).mean())
    for sex, is_female in (("male", False), ("female", True)):
        for anchor in (50, 60, 70, 80, 85, 90):
            band = (p["female"] == is_female) & (age >= anchor - 2) & (age < anchor + 3)
            out[f"deaths_{sex}_{anchor}"] = float(m.died[band].mean())
    if m.truth is not None:
        known = m.truth.notna()
        out["oracle_auroc"] = float(roc_auc_score(m.admissions[known] > 0, m.truth[known]))
    for code in CONDITION_CODES:
        out[f"prevalence_{code}"] = 100 * float(p[f"ltc_{code}"].mean())  # replaced below by the QOF denominators
    if m.use is not None:
        out.update(use_measures(p, m.last_age, m.use, m.exposure))
    return out


def build_checks(m: Measured, profile: dict) -> list[Check]:
    values = measures(m)
    checks = []
    rel = profile["validation"]["prevalence_relative_tolerance"]
    age = m.people["age"]
    for code in CONDITION_CODES:
        cond = profile["conditions"][code]
        denominator = age >= cond["min_age"]
        flags = m.people.loc[denominator, f"ltc_{code}"]
        group = "" if cond["min_age"] == 0 else f" ({cond['min_age']}+)"
        source = "QOF 2019/20 crude recorded prevalence (House of Commons Library)"
        checks.append(Check(f"prevalence % {code}{group}", cond["prevalence"], 100 * float(flags.mean()),
                            max(rel * cond["prevalence"], 0.1), source))
        if profile["validation"]["deprivation_decile_prevalence"]:
            imd = m.people.loc[denominator, "imd"]
            drel = profile["validation"]["decile_relative_tolerance"]
            for label, decile, key in (("most deprived decile", 1, "most_deprived"), ("least deprived decile", 10, "least_deprived")):
                checks.append(Check(f"prevalence % {code}{group}, {label}", cond[key],
                                    100 * float(flags[imd == decile].mean()), max(drel * cond[key], 0.15), source))
    for name, target in profile["targets"].items():
        if "skip" in target:
            continue
        checks.append(Check(name.replace("_", " "), float(target["value"]), float(values.get(name, np.nan)),
                            float(target.get("tolerance", 0.0)), target["source"], target.get("comparison", "within")))
    return checks


# ---- report ---------------------------------------------------------------------------------------------

def _png(fig) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    import matplotlib.pyplot as plt
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode()


def plots(m: Measured, profile: dict) -> dict[str, str]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    p = m.people
    bands = np.arange(0, 105, 5)
    band = np.minimum(p["age"] // 5 * 5, 100)
    images = {}
    fig, ax = plt.subplots(figsize=(6, 5))
    men = band[~p["female"]].value_counts().reindex(bands, fill_value=0) / len(p) * 100
    women = band[p["female"]].value_counts().reindex(bands, fill_value=0) / len(p) * 100
    ax.barh(bands, -men, height=4.5, label="men")
    ax.barh(bands, women, height=4.5, label="women")
    ax.set_xlabel("% of the list"), ax.set_ylabel("age (5-year bands)"), ax.legend()
    ax.set_title(f"Population pyramid, 1 January {m.year}")
    images["Population pyramid"] = _png(fig)

    age_band = pd.cut(p["age"], AGE_BANDS, labels=AGE_LABELS, right=False)
    fig, axes = plt.subplots(3, 6, figsize=(16, 8), sharex=True)
    for ax, code in zip(axes.flat, CONDITION_CODES):
        prevalence = p.groupby(age_band, observed=False)[f"ltc_{code}"].mean() * 100
        ax.plot(range(len(AGE_LABELS)), prevalence.to_numpy(), marker="o")
        ax.set_title(CONDITION_LABELS[code], fontsize=9)
        ax.set_xticks(range(len(AGE_LABELS)), AGE_LABELS, rotation=90, fontsize=7)
    fig.suptitle("Recorded prevalence (%) by age band")
    images["Prevalence by age band"] = _png(fig)

    fig, ax = plt.subplots(figsize=(7, 4.5))
    quintile = ((p["imd"] - 1) // 2 + 1).astype(int)
    for q in (1, 3, 5):
        share = (p["n_ltc"] >= 2)[quintile == q].groupby(age_band[quintile == q], observed=False).mean() * 100
        ax.plot(range(len(AGE_LABELS)), share.to_numpy(), marker="o", label=f"IMD quintile {q}" + (" (most deprived)" if q == 1 else " (least)" if q == 5 else ""))
    ax.set_xticks(range(len(AGE_LABELS)), AGE_LABELS)
    ax.set_ylabel("% with 2+ conditions"), ax.legend(), ax.set_title("Multimorbidity by age and deprivation")
    images["Multimorbidity by age and deprivation"] = _png(fig)

    fig, ax = plt.subplots(figsize=(7, 4.5))
    names = ["0_19", "20_37", "38_52", "53_66", "67_plus", "85_plus"]
    generated = [_rate(m, (p["age"] >= ADMISSION_BANDS[n][0]) & (p["age"] < ADMISSION_BANDS[n][1])) for n in names]
    published = [profile["targets"][f"admissions_per_1000_{n}"]["value"] for n in names]
    x = np.arange(len(names))
    ax.bar(x - 0.2, generated, 0.4, label="generated")
    ax.bar(x + 0.2, published, 0.4, label="published")
    ax.set_xticks(x, [n.replace("_plus", "+").replace("_", "-") for n in names])
    ax.set_ylabel("emergency admissions per 1,000 per year"), ax.legend()
    ax.set_title(f"Emergency admissions by age, {m.year}")
    images["Admissions per 1,000 by age"] = _png(fig)

    if m.use is not None:
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for kind in m.use.this_year.columns:
            counts = np.sort(m.use.this_year[kind].to_numpy())
            at_least = np.arange(1, counts.max() + 1) if counts.max() > 0 else np.array([1])
            share = 1 - np.searchsorted(counts, at_least, side="left") / max(counts.size, 1)
            ax.step(at_least, np.maximum(share, 1e-9), where="post", label=kind.replace("_", " "))
        ax.set_xscale("log"), ax.set_yscale("log"), ax.set_ylim(bottom=0.5 / max(len(p), 1))
        ax.set_xlabel("encounters in the year (at least)"), ax.set_ylabel("share of people"), ax.legend(fontsize=8)
        ax.set_title(f"How many people reach each yearly count, {m.year}")
        images["Tails of yearly counts"] = _png(fig)
    return images


def write_html(report: Report, images: dict[str, str], path: Path) -> None:
    rows = "".join(
        f"<tr class={'pass' if c.passed else 'fail'}><td>{html.escape(c.name)}</td><td>{_fmt(c.target)}</td>"
        f"<td>{_fmt(c.value)}</td><td>{html.escape(c.allowed)}</td><td>{'pass' if c.passed else 'FAIL'}</td>"
        f"<td>{html.escape(c.source)}</td></tr>" for c in report.checks)
    figures = "".join(f"<h2>{html.escape(title)}</h2><img alt='{html.escape(title)}' src='data:image/png;base64,{data}'>"
                      for title, data in images.items())
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in report.notes)
    centiles = ""
    if report.centiles:
        columns = list(next(iter(report.centiles.values())))
        head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
        body = "".join(f"<tr><td>{html.escape(name)}</td>" + "".join(f"<td>{_fmt(v[c])}</td>" for c in columns) + "</tr>"
                       for name, v in report.centiles.items())
        centiles = (f"<h2>Per person in {report.centile_year}</h2><p>People on the list on 1 January; repeat "
                    f"medicines among adults.</p><table><tr><th>count</th>{head}</tr>{body}</table>")
    path.write_text(f"""<!doctype html><html lang="en"><meta charset="utf-8">
<title>Synthetic population validation ({html.escape(report.profile)})</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto}}td,th{{padding:2px 8px;font-size:13px}}
tr.fail td{{background:#fde2e2}}img{{max-width:100%}}</style>
<h1>Synthetic population validation: {html.escape(report.profile)} profile</h1>
<p>{report.passed} of {report.measured} measurable targets pass ({report.pass_share:.0%}). Records: {html.escape(report.directory)}.</p>
<ul>{notes}</ul>
<table><tr><th>target</th><th>published</th><th>generated</th><th>tolerance</th><th>result</th><th>source</th></tr>{rows}</table>
{centiles}{figures}</html>""")


def validate_population(directory: str | Path, profile: str | None = None, with_plots: bool = True) -> Report:
    directory = Path(directory)
    if not (directory / "patients.parquet").exists():
        raise UserInputError(f"The folder {directory} has no patients.parquet; run `proactive-care cohort` first.")
    generation = directory / GENERATION_FILE
    if profile is None:
        profile = json.loads(generation.read_text())["profile"] if generation.exists() else "leicester"
    settings = load_profile(profile)
    m = measure(directory)
    report = Report(profile, str(directory), build_checks(m, settings))
    if m.use is not None:
        report.centiles, report.centile_year = centile_table(m.people, m.use), m.year
    report.implausible_people = _implausible_people(report, m)
    report.notes = [
        f"Measured on the {len(m.people):,} people on the list on 1 January {m.year}; admissions and deaths over {m.year}.",
        "Multimorbidity is compared as ratios: our list has 18 conditions, Barnett's 40, so absolute shares are lower.",
        "eFI hazard ratios are compared with rate ratios among people aged 65+, adjusted for age in 5-year bands.",
        "Admissions per 1,000 by age band are directly standardised to England's deprivation mix (equal "
        "IMD quintiles), so a deprived profile such as Leicester is compared like with like; all ages is crude.",
    ]
    report.notes += [f"Not measured: {name.replace('_', ' ')} ({target['skip']})."
                     for name, target in settings["targets"].items() if "skip" in target]
    report.json_path = str(directory / "validation.json")
    report.html_path = str(directory / "validation.html")
    Path(report.json_path).write_text(json.dumps(report.to_json(), indent=2))
    write_html(report, plots(m, settings) if with_plots else {}, Path(report.html_path))
    return report
