"""Temporal validation: the model trained at T, judged on people and outcomes at T + 12 months.

Side by side on the same evaluation year: our model; a logistic-regression baseline on age, sex and
condition count (fitted on the same training year); the seed plans' rule-based cohort (60+ plus
18-59 with 3+ conditions); "top N% by past-year emergency admissions"; and the oracle (the
generator's true probabilities, when the records carry truth). The report (HTML with plot images,
and JSON of every figure) goes into the model folder.
"""

from __future__ import annotations

import html
import json
import math
import sys
from decimal import ROUND_DOWN, Decimal
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import brentq
from scipy.special import expit, logit
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

from features.build import LABEL, LABEL_COUNT, build_features, parse_index_date
from features.errors import UserInputError
from features.flags import DEFAULT_TOP_CUTOFFS, in_top_fraction, risk_flags, rule_based_cohort, rule_flags
from features.records import Records
from model.training import FittedModel, records_until, require_people, training_features

TOP_FRACTIONS = (0.01, 0.02, 0.05, 0.10)
BASELINE_PREDICTORS = ("age", "sex", "ltc_count")
PROBABILITY_METHODS = ("model", "baseline", "oracle")
METHOD_LABELS = {
    "model": "Our model",
    "baseline": "Baseline (age, sex, condition count)",
    "past_admissions": "Past-year emergency admissions",
    "rule_based": "Rule-based cohort (60+ and 18-59 with 3+ LTCs)",
    "oracle": "Oracle (generator's true probability)",
}
SHAP_SAMPLE = 5000
# A group's observed/expected ratio outside this band (with enough events) is called miscalibrated.
CALIBRATION_BAND = (0.8, 1.25)
MIN_GROUP_EVENTS = 30


# ---------------------------------------------------------------- figures for one score
def calibration_intercept_slope(y: np.ndarray, probability: np.ndarray) -> tuple[float, float]:
    """Calibration-in-the-large (intercept with the log-odds as offset) and calibration slope."""
    p = np.clip(probability, 1e-6, 1 - 1e-6)
    log_odds = logit(p)

    def score(intercept: float) -> float:
        return float(np.sum(y - expit(intercept + log_odds)))

    intercept = brentq(score, -10, 10)
    slope = LogisticRegression(C=np.inf, max_iter=1000).fit(log_odds.reshape(-1, 1), y).coef_[0, 0]
    return float(intercept), float(slope)


def wilson_interval(events: np.ndarray, n: np.ndarray, z: float = 1.96) -> tuple[np.ndarray, np.ndarray]:
    p = events / n
    centre = (p + z**2 / (2 * n)) / (1 + z**2 / n)
    half = z * np.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / (1 + z**2 / n)
    return centre - half, centre + half


def calibration_deciles(y: np.ndarray, probability: np.ndarray) -> list[dict]:
    frame = pd.DataFrame({"y": y, "p": probability})
    frame["decile"] = pd.qcut(frame["p"].rank(method="first"), 10, labels=False) + 1
    table = frame.groupby("decile").agg(n=("y", "size"), events=("y", "sum"), predicted=("p", "mean"))
    low, high = wilson_interval(table["events"].to_numpy(float), table["n"].to_numpy(float))
    table["observed"] = table["events"] / table["n"]
    table["observed_low"], table["observed_high"] = low, high
    return table.reset_index().to_dict(orient="records")


def top_flag(score: pd.Series, fraction: float, tie_break: pd.Series | None = None) -> pd.Series:
    """The top ``fraction`` by ``score`` under the flags' one rule (``in_top_fraction``: everyone
    tied at the cut-off is in); ``tie_break`` ranks people with the same score first."""
    key = score.to_numpy(dtype=float)
    if tie_break is not None:  # one rank over (score, tie_break): equal only when both are
        tie = tie_break.to_numpy(dtype=float)
        order = np.lexsort((tie, key))
        pairs = np.column_stack([key[order], tie[order]])
        rank = np.empty(len(key))
        rank[order] = np.cumsum(np.r_[True, (np.diff(pairs, axis=0) != 0).any(axis=1)])
        key = rank
    return pd.Series(in_top_fraction(key, fraction), index=score.index)


def flag_figures(flag: pd.Series, y: pd.Series, events: pd.Series) -> dict:
    flagged = int(flag.sum())
    true_positives = int((flag & (y == 1)).sum())
    return {
        "flagged": flagged,
        "ppv": true_positives / flagged if flagged else None,
        "sensitivity": true_positives / int(y.sum()) if y.sum() else None,
        "admissions_captured": int(events[flag].sum()),
        "share_of_admissions": float(events[flag].sum() / events.sum()) if events.sum() else None,
        "admissions_per_person_flagged": float(events[flag].sum() / flagged) if flagged else None,
    }


def score_figures(score: pd.Series, y: pd.Series, events: pd.Series, is_probability: bool, tie_break=None) -> dict:
    figures = {
        "people": int(len(score)),
        "auroc": float(roc_auc_score(y, score)),
        "average_precision": float(average_precision_score(y, score)),
    }
    if is_probability:
        figures["brier"] = float(brier_score_loss(y, score))
        figures["calibration_intercept"], figures["calibration_slope"] = calibration_intercept_slope(
            y.to_numpy(), score.to_numpy()
        )
        figures["mean_predicted"] = float(score.mean())
        figures["calibration_deciles"] = calibration_deciles(y.to_numpy(), score.to_numpy())
    figures["top"] = {
        f"{fraction:.0%}": flag_figures(top_flag(score, fraction, tie_break), y, events)
        for fraction in TOP_FRACTIONS
    }
    return figures


# ---------------------------------------------------------------- the comparison
def oracle_probability(records: Records, features: pd.DataFrame, eval_date: pd.Timestamp) -> pd.Series | None:
    """The generator's true probability for the evaluation year, when records carry it."""
    if records.truth is None or records.truth.empty:
        return None
    truth = records.truth
    truth = truth.loc[truth["year"].astype(int) == eval_date.year]
    if truth.empty:
        return None
    probability = truth.set_index(truth["nhs_number"].astype(str))["probability"].astype(float)
    return probability.reindex(features.index)


def fit_baseline(train_features: pd.DataFrame) -> LogisticRegression:
    return LogisticRegression(max_iter=1000).fit(baseline_matrix(train_features), train_features[LABEL])


def baseline_matrix(features: pd.DataFrame) -> np.ndarray:
    return np.column_stack(
        [features["age"], features["age"] ** 2 / 100, features["sex"] == "F", features["ltc_count"]]
    ).astype(float)


def age_band(age: pd.Series) -> pd.Series:
    return pd.cut(age, [-1, 17, 39, 59, 74, 200], labels=["0-17", "18-39", "40-59", "60-74", "75+"]).astype(str)


def fairness(features: pd.DataFrame, probability: pd.Series, flag: pd.Series) -> dict:
    """Flag rate, PPV, sensitivity and calibration by sex, age band, ethnicity and IMD quintile."""
    from fairlearn.metrics import MetricFrame

    y = features[LABEL]
    groups = {
        "sex": features["sex"].map({"F": "Female", "M": "Male"}),
        "age_band": age_band(features["age"]),
        "ethnicity": features["ethnicity"].astype(object).where(features["ethnicity"].notna(), "Not recorded"),
        "imd_quintile": ((features["imd_decile"] + 1) // 2).map(
            lambda q: "Not known" if pd.isna(q) else f"Q{int(q)}" + (" (most deprived)" if q == 1 else " (least deprived)" if q == 5 else "")
        ),
    }
    flagged = flag.to_numpy()
    results = {}
    for attribute, group in groups.items():
        frame = MetricFrame(
            metrics={
                "people": lambda t, p: len(t),
                "events": lambda t, p: int(np.sum(t)),
                "observed_rate": lambda t, p: float(np.mean(t)),
                "mean_predicted": lambda t, p: float(np.mean(p)),
            },
            y_true=y.to_numpy(),
            y_pred=probability.to_numpy(),
            sensitive_features=group.to_numpy(),
        )
        flags = MetricFrame(
            metrics={
                "flag_rate": lambda t, f: float(np.mean(f)),
                "ppv": lambda t, f: float(np.mean(t[f])) if f.any() else float("nan"),
                "sensitivity": lambda t, f: float(np.mean(f[t == 1])) if (t == 1).any() else float("nan"),
            },
            y_true=y.to_numpy(),
            y_pred=flagged,
            sensitive_features=group.to_numpy(),
        )
        table = pd.concat([frame.by_group, flags.by_group], axis=1)
        table["observed_to_expected"] = table["observed_rate"] / table["mean_predicted"]
        table = table.reset_index().rename(columns={table.index.name or "sensitive_feature_0": "group"})
        table.columns = ["group", *table.columns[1:]]
        rows = table.to_dict(orient="records")
        results[attribute] = {"groups": rows, "findings": fairness_findings(attribute, table)}
    return results


def fairness_findings(attribute: str, table: pd.DataFrame) -> list[str]:
    """The largest gaps in flag rate and PPV, and any miscalibrated group, in words."""
    name = attribute.replace("_", " ")
    findings = []
    for metric, words in (("flag_rate", "flag rate"), ("ppv", "PPV")):
        valid = table.dropna(subset=[metric])
        if len(valid) < 2:
            continue
        high = valid.loc[valid[metric].idxmax()]
        low = valid.loc[valid[metric].idxmin()]
        findings.append(
            f"Largest {words} gap by {name}: {high['group']} {high[metric]:.1%} vs "
            f"{low['group']} {low[metric]:.1%} ({(high[metric] - low[metric]) * 100:.1f} percentage points)."
        )
    off = table.loc[
        (table["events"] >= MIN_GROUP_EVENTS)
        & ~table["observed_to_expected"].between(*CALIBRATION_BAND)
    ]
    for _, row in off.iterrows():
        direction = "under-predicts" if row["observed_to_expected"] > 1 else "over-predicts"
        findings.append(
            f"Calibration is off for {name} {row['group']}: the model {direction} risk "
            f"(observed {row['observed_rate']:.1%} vs predicted {row['mean_predicted']:.1%})."
        )
    if off.empty:
        findings.append(
            f"Calibration holds in every {name} group with at least {MIN_GROUP_EVENTS} admissions "
            f"(observed/expected within {CALIBRATION_BAND[0]}-{CALIBRATION_BAND[1]})."
        )
    return findings


def overlap_table(flags: pd.DataFrame) -> dict:
    """For each pair of flags: people in both, and the share of the row flag also in the column."""
    matrix = flags.astype(int).T @ flags.astype(int)
    sizes = np.diag(matrix)
    share = matrix.div(np.where(sizes == 0, 1, sizes), axis=0)
    return {"people_in_both": matrix.to_dict(), "share_of_row_flag": share.round(4).to_dict()}


def score_option(fraction: float) -> str | None:
    """The ``score`` option that flags ``fraction`` of the people scored as top_2pct, rounded down
    to three significant figures so it flags no more than that share; None when that is everyone.
    A share above the top_5pct default widens that flag too (the narrow flag may not be wider)."""
    if fraction >= 1:
        return None
    step = Decimal(1).scaleb(math.floor(math.log10(fraction)) - 2)
    rounded = Decimal(repr(fraction)).quantize(step, rounding=ROUND_DOWN).normalize()
    option = f"--top-2pct-cutoff {rounded:f}"
    if rounded > Decimal(repr(DEFAULT_TOP_CUTOFFS["top_5pct"])):
        option += f" --top-5pct-cutoff {rounded:f}"
    return option


def capacity_advice(cap: dict) -> str:
    """How to score so the top_2pct flag holds the share of people the MDTs can review."""
    option = score_option(cap["cutoff_fraction"])
    return f"to flag these people, score with {option}" if option else "everyone fits, so no cut-off is needed"


def capacity(probability: pd.Series, y: pd.Series, events: pd.Series, reviewable: int) -> dict:
    """If MDTs can review ``reviewable`` people: the cut-off and expected admissions among them."""
    reviewable = max(1, min(int(reviewable), len(probability)))
    flag = top_flag(probability, reviewable / len(probability))
    return {
        "people_reviewable": reviewable,
        "cutoff_percentile": float(100 * (1 - reviewable / len(probability))),
        "cutoff_fraction": reviewable / len(probability),
        "probability_threshold": float(probability[flag].min()),
        "expected_people_admitted": float(probability[flag].sum()),
        "observed_people_admitted": int(y[flag].sum()),
        "observed_admissions": int(events[flag].sum()),
    }


def evaluate(
    records: Records, fitted: FittedModel, eval_date: str | pd.Timestamp | None = None,
    reviewable: int = 5000, progress=None,
) -> tuple[dict, dict]:
    """All figures (JSON-ready) and the per-person frames the plots need."""
    from model.explain import global_importance

    train_date = parse_index_date(fitted.index_date)
    eval_date = (
        train_date + pd.DateOffset(months=12) if eval_date is None
        else parse_index_date(eval_date, "evaluation date")
    )
    if eval_date < train_date + pd.DateOffset(months=12):
        raise UserInputError(
            f"The evaluation date {eval_date:%Y-%m-%d} is less than 12 months after the training "
            f"date {train_date:%Y-%m-%d}, so its people and outcomes overlap the training year."
        )
    step = progress.update if progress is not None else (lambda n=1: None)
    require_people(records, eval_date, "evaluate")
    features = build_features(records_until(records, eval_date + pd.DateOffset(months=12)), eval_date, with_label=True)
    y, events = features[LABEL], features[LABEL_COUNT]
    train_features = training_features(records, train_date)
    step()

    probability = pd.Series(fitted.predict_probability(features), index=features.index)
    baseline = pd.Series(
        fit_baseline(train_features).predict_proba(baseline_matrix(features))[:, 1], index=features.index
    )
    oracle = oracle_probability(records, features, eval_date)
    rule = rule_based_cohort(features)
    past = features["emergency_admissions_12m"].astype(float)
    step()

    methods = {
        "model": score_figures(probability, y, events, True),
        "baseline": score_figures(baseline, y, events, True),
        "past_admissions": score_figures(past, y, events, False, tie_break=features["emergency_admissions_12_24m"]),
        "rule_based": {
            "people": int(len(rule)),
            "auroc": float(roc_auc_score(y, rule)),
            "average_precision": float(average_precision_score(y, rule)),
            "cohort": flag_figures(rule, y, events),
        },
    }
    if oracle is not None:
        known = oracle.notna()
        methods["oracle"] = score_figures(oracle[known], y[known], events[known], True)
        methods["oracle"]["people_with_truth"] = int(known.sum())
    step()

    flags = pd.concat([risk_flags(probability, DEFAULT_TOP_CUTOFFS, index=features.index), rule_flags(features)],
                      axis=1)
    rule_size = int(rule.sum())
    same_size = top_flag(probability, rule_size / len(rule)) if rule_size else rule
    sample = features.sample(min(SHAP_SAMPLE, len(features)), random_state=0)
    importance = global_importance(fitted, sample)
    step()

    report = {
        "training_index_date": f"{train_date:%Y-%m-%d}",
        "evaluation_index_date": f"{eval_date:%Y-%m-%d}",
        "outcome": "at least one emergency admission in the 12 months after the index date",
        "population": {
            "people": int(len(features)),
            "people_admitted": int(y.sum()),
            "emergency_admissions": int(events.sum()),
            "event_rate": float(y.mean()),
        },
        "methods": methods,
        "model_vs_rule_based": {
            "rule_based_cohort": flag_figures(rule, y, events),
            "model_top_5pct": methods["model"]["top"]["5%"],
            "model_same_size_as_rule_based": flag_figures(same_size, y, events),
        },
        "flag_overlap": overlap_table(flags),
        "fairness": fairness(features, probability, flags["top_5pct"]),
        "fairness_flag": "top_5pct",
        "global_importance": {name: float(value) for name, value in importance.items()},
        "capacity": capacity(probability, y, events, reviewable),
    }
    step()
    frames = {"features": features, "probability": probability, "baseline": baseline, "oracle": oracle}
    return report, frames


# ---------------------------------------------------------------- report
def _plots(report: dict, frames: dict, folder: Path) -> dict[str, str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import roc_curve

    from model.explain import FEATURE_TITLES

    files = {}
    methods = report["methods"]

    figure, axis = plt.subplots(figsize=(6, 5))
    top = max(d["predicted"] for m in PROBABILITY_METHODS if m in methods for d in methods[m]["calibration_deciles"])
    for method in PROBABILITY_METHODS:
        if method not in methods:
            continue
        deciles = pd.DataFrame(methods[method]["calibration_deciles"])
        axis.errorbar(
            deciles["predicted"], deciles["observed"],
            yerr=[deciles["observed"] - deciles["observed_low"], deciles["observed_high"] - deciles["observed"]],
            marker="o", capsize=3, label=METHOD_LABELS[method],
        )
    axis.plot([0, top], [0, top], color="grey", linestyle="--", label="Perfect calibration")
    axis.set_xlabel("Mean predicted probability (decile)")
    axis.set_ylabel("Observed proportion admitted (95% CI)")
    axis.set_title("Calibration by decile, evaluation year")
    axis.legend(fontsize=8)
    files["calibration"] = "evaluation_calibration.png"
    figure.tight_layout()
    figure.savefig(folder / files["calibration"], dpi=110)
    plt.close(figure)

    figure, axis = plt.subplots(figsize=(6, 5))
    y = frames["features"][LABEL]
    scores = {"model": frames["probability"], "baseline": frames["baseline"],
              "past_admissions": frames["features"]["emergency_admissions_12m"]}
    if frames["oracle"] is not None:
        scores["oracle"] = frames["oracle"]
    for method, score in scores.items():
        known = score.notna()
        fpr, tpr, _ = roc_curve(y[known], score[known])
        axis.plot(fpr, tpr, label=f"{METHOD_LABELS[method]} ({methods[method]['auroc']:.3f})")
    axis.plot([0, 1], [0, 1], color="grey", linestyle="--")
    axis.set_xlabel("False positive rate")
    axis.set_ylabel("Sensitivity")
    axis.set_title("ROC curves, evaluation year (AUROC)")
    axis.legend(fontsize=8)
    files["roc"] = "evaluation_roc.png"
    figure.tight_layout()
    figure.savefig(folder / files["roc"], dpi=110)
    plt.close(figure)

    figure, axis = plt.subplots(figsize=(7, 4))
    ranked = [m for m in ("model", "baseline", "past_admissions", "oracle") if m in methods]
    width = 0.8 / len(ranked)
    for offset, method in enumerate(ranked):
        shares = [methods[method]["top"][f"{f:.0%}"]["share_of_admissions"] for f in TOP_FRACTIONS]
        axis.bar(np.arange(len(TOP_FRACTIONS)) + offset * width, shares, width, label=METHOD_LABELS[method])
    axis.set_xticks(np.arange(len(TOP_FRACTIONS)) + width * (len(ranked) - 1) / 2)
    axis.set_xticklabels([f"Top {f:.0%}" for f in TOP_FRACTIONS])
    axis.set_ylabel("Share of next-year emergency admissions")
    axis.set_title("Admissions captured by the highest-risk people")
    axis.legend(fontsize=8)
    files["capture"] = "evaluation_capture.png"
    figure.tight_layout()
    figure.savefig(folder / files["capture"], dpi=110)
    plt.close(figure)

    importance = pd.Series(report["global_importance"]).head(15)[::-1]
    figure, axis = plt.subplots(figsize=(7, 5))
    axis.barh([FEATURE_TITLES.get(name, name) for name in importance.index], importance.to_numpy())
    axis.set_xlabel("Mean |SHAP| (log-odds)")
    axis.set_title("What drives the model's scores (global SHAP importance)")
    files["importance"] = "evaluation_shap_importance.png"
    figure.tight_layout()
    figure.savefig(folder / files["importance"], dpi=110)
    plt.close(figure)

    figure, axes = plt.subplots(1, len(report["fairness"]), figsize=(14, 4), sharey=True)
    for axis, (attribute, result) in zip(axes, report["fairness"].items()):
        table = pd.DataFrame(result["groups"])
        positions = np.arange(len(table))
        axis.bar(positions - 0.2, table["flag_rate"], 0.4, label="Flag rate")
        axis.bar(positions + 0.2, table["ppv"], 0.4, label="PPV")
        axis.set_xticks(positions)
        axis.set_xticklabels(table["group"], rotation=45, ha="right", fontsize=7)
        axis.set_title(attribute.replace("_", " ").capitalize())
    axes[0].legend(fontsize=8)
    figure.suptitle(f"Fairness of the {report['fairness_flag'].replace('_', ' ')} flag")
    files["fairness"] = "evaluation_fairness.png"
    figure.tight_layout()
    figure.savefig(folder / files["fairness"], dpi=110)
    plt.close(figure)
    return files


def _fmt(value, kind: str = "num") -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "–"
    if kind == "pct":
        return f"{value:.1%}"
    if kind == "int":
        return f"{int(value):,}"
    return f"{value:.3f}"


def summary_rows(report: dict) -> list[list[str]]:
    """Rows of the headline comparison (method, AUROC, AP, Brier, intercept, slope, top-5% figures)."""
    rows = []
    for method, figures in report["methods"].items():
        top5 = figures.get("top", {}).get("5%") or figures.get("cohort", {})
        rows.append([
            METHOD_LABELS[method], _fmt(figures["auroc"]), _fmt(figures["average_precision"]),
            _fmt(figures.get("brier")), _fmt(figures.get("calibration_intercept")),
            _fmt(figures.get("calibration_slope")), _fmt(top5.get("flagged"), "int"),
            _fmt(top5.get("ppv"), "pct"), _fmt(top5.get("share_of_admissions"), "pct"),
            _fmt(top5.get("admissions_per_person_flagged")),
        ])
    return rows


SUMMARY_HEADER = ["Method", "AUROC", "AP", "Brier", "Cal. intercept", "Cal. slope",
                  "Flagged (top 5% / cohort)", "PPV", "Share of admissions", "Admissions per person"]


def _html_table(header: list[str], rows: list[list]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render_html(report: dict, images: dict[str, str]) -> str:
    methods = report["methods"]
    top_rows = []
    for method, figures in methods.items():
        for fraction, flag in figures.get("top", {}).items():
            top_rows.append([METHOD_LABELS[method], fraction, _fmt(flag["flagged"], "int"), _fmt(flag["ppv"], "pct"),
                             _fmt(flag["sensitivity"], "pct"), _fmt(flag["share_of_admissions"], "pct")])
    rule = report["model_vs_rule_based"]
    overlap = pd.DataFrame(report["flag_overlap"]["people_in_both"])
    overlap_rows = [[name, *[_fmt(v, "int") for v in row]] for name, row in overlap.iterrows()]
    fairness_sections = []
    for attribute, result in report["fairness"].items():
        rows = [[g["group"], _fmt(g["people"], "int"), _fmt(g["flag_rate"], "pct"), _fmt(g["ppv"], "pct"),
                 _fmt(g["sensitivity"], "pct"), _fmt(g["observed_rate"], "pct"), _fmt(g["mean_predicted"], "pct"),
                 _fmt(g["observed_to_expected"])] for g in result["groups"]]
        fairness_sections.append(
            f"<h3>{html.escape(attribute.replace('_', ' ').capitalize())}</h3>"
            + _html_table(["Group", "People", "Flag rate", "PPV", "Sensitivity", "Observed", "Predicted", "O/E"], rows)
            + "<ul>" + "".join(f"<li>{html.escape(f)}</li>" for f in result["findings"]) + "</ul>"
        )
    cap = report["capacity"]
    population = report["population"]
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>Evaluation report</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto}}table{{border-collapse:collapse;margin:1em 0}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}td:first-child,th:first-child{{text-align:left}}</style></head><body>
<h1>Temporal validation</h1>
<p>Trained on people registered on {report['training_index_date']} and their next 12 months; evaluated on
{_fmt(population['people'], 'int')} people registered on {report['evaluation_index_date']} and their next 12 months
({_fmt(population['people_admitted'], 'int')} people admitted, {_fmt(population['emergency_admissions'], 'int')}
emergency admissions). Outcome: {html.escape(report['outcome'])}.</p>
<h2>Side by side</h2>{_html_table(SUMMARY_HEADER, summary_rows(report))}
<h2>Highest-risk people: top 1%, 2%, 5%, 10%</h2>
{_html_table(["Method", "Top", "Flagged", "PPV", "Sensitivity", "Share of admissions"], top_rows)}
<p>Rule-based cohort: {_fmt(rule['rule_based_cohort']['flagged'], 'int')} people,
{_fmt(rule['rule_based_cohort']['admissions_per_person_flagged'])} admissions per person flagged. Our model's top 5%:
{_fmt(rule['model_top_5pct']['flagged'], 'int')} people, {_fmt(rule['model_top_5pct']['admissions_per_person_flagged'])}
admissions per person flagged. Our model's top {_fmt(rule['rule_based_cohort']['flagged'], 'int')} people (same size as the
cohort) capture {_fmt(rule['model_same_size_as_rule_based']['share_of_admissions'], 'pct')} of admissions vs the cohort's
{_fmt(rule['rule_based_cohort']['share_of_admissions'], 'pct')}.</p>
<img src="{images['capture']}"><img src="{images['roc']}">
<h2>Calibration</h2><img src="{images['calibration']}">
<h2>How the flags overlap (people in both)</h2>{_html_table(["", *overlap.columns], overlap_rows)}
<h2>Fairness ({html.escape(report['fairness_flag'])} flag)</h2><img src="{images['fairness']}">
{''.join(fairness_sections)}
<h2>What drives the scores</h2><img src="{images['importance']}">
<h2>Capacity</h2><p>If MDTs can review {_fmt(cap['people_reviewable'], 'int')} people, the cut-off is the
{cap['cutoff_percentile']:.2f}th percentile (probability {cap['probability_threshold']:.3f} and above). The model
expects {cap['expected_people_admitted']:.0f} of them to be admitted in the next 12 months; in the evaluation year
{_fmt(cap['observed_people_admitted'], 'int')} were, with {_fmt(cap['observed_admissions'], 'int')} admissions;
{html.escape(capacity_advice(cap))}.</p>
</body></html>"""


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        return None if np.isnan(value) else float(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def write_report(report: dict, frames: dict, folder: Path) -> None:
    images = _plots(report, frames, folder)
    report["images"] = images
    (folder / "evaluation.json").write_text(json.dumps(_jsonable(report), indent=2))
    (folder / "evaluation.html").write_text(render_html(report, images))


def print_summary(report: dict, file=None) -> None:
    file = file or sys.stdout
    rows = [SUMMARY_HEADER[:6] + ["Top 5% share"]] + [row[:6] + [row[8]] for row in summary_rows(report)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for number, row in enumerate(rows):
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)), file=file)
        if number == 0:
            print("  ".join("-" * width for width in widths), file=file)
    rule = report["model_vs_rule_based"]
    print(
        f"Admissions per person flagged: model top 5% "
        f"{rule['model_top_5pct']['admissions_per_person_flagged']:.3f} vs rule-based cohort "
        f"{rule['rule_based_cohort']['admissions_per_person_flagged']:.3f} "
        f"({rule['rule_based_cohort']['flagged']:,} people).",
        file=file,
    )
    cap = report["capacity"]
    print(
        f"Capacity {cap['people_reviewable']:,}: cut-off percentile {cap['cutoff_percentile']:.2f}, "
        f"expected {cap['expected_people_admitted']:.0f} people admitted "
        f"(observed {cap['observed_people_admitted']:,}); {capacity_advice(cap)}.",
        file=file,
    )


def evaluate_model_folder(records_dir, model_dir, eval_date=None, capacity: int = 5000) -> int:
    from tqdm import tqdm

    from features.records import read_records
    from model import card, persist

    with tqdm(total=6, desc="evaluate", file=sys.stderr, unit="step", leave=False) as progress:
        fitted = persist.load(model_dir)
        records = read_records(records_dir)
        report, frames = evaluate(records, fitted, eval_date, reviewable=capacity, progress=progress)
        write_report(report, frames, Path(model_dir))
        methods = report["methods"]
        headline = {
            key: methods["model"][key]
            for key in ("auroc", "average_precision", "brier", "calibration_intercept", "calibration_slope")
        }
        headline["top_5pct_share_of_admissions"] = methods["model"]["top"]["5%"]["share_of_admissions"]
        headline["baseline_auroc"] = methods["baseline"]["auroc"]
        if "oracle" in methods:
            headline["oracle_auroc"] = methods["oracle"]["auroc"]
        persist.update_manifest(
            model_dir, evaluation_index_date=report["evaluation_index_date"], metrics=_jsonable(headline)
        )
        card.write_card(model_dir)
        progress.update(1)
    print_summary(report)
    print(f"Report: {Path(model_dir) / 'evaluation.html'} (figures in evaluation.json).")
    return 0
