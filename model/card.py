"""The model card (TRIPOD+AI items), written as Markdown and HTML with every trained model.

Built from the model folder's manifest.json and, once `evaluate` has run, evaluation.json; the
same sections render to both formats.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

from features.conditions import CONDITION_LABELS
from model.persist import read_manifest

CARD_MARKDOWN = "model_card.md"
CARD_HTML = "model_card.html"


def _pct(value) -> str:
    return "–" if value is None else f"{value:.1%}"


def _num(value) -> str:
    return "–" if value is None else f"{value:.3f}"


def sections(manifest: dict, evaluation: dict | None) -> list[tuple[str, list]]:
    """(heading, blocks); a block is a paragraph string or a table (header, rows)."""
    from model.evaluate import METHOD_LABELS, SUMMARY_HEADER, capacity_advice, summary_rows
    from model.explain import FEATURE_TITLES

    training = manifest.get("training", {})
    conditions = ", ".join(CONDITION_LABELS.values())
    cards = [
        ("Model", [
            f"Proactive Care emergency-admission risk model, trained on index date "
            f"{manifest['training_index_date']} (model file sha256 `{manifest['sha256']}`, created "
            f"{manifest['created_at']}).",
            "Gradient-boosted decision trees (scikit-learn HistGradientBoostingClassifier) in a "
            "scikit-learn Pipeline, fitted on everyone in the training year, with sigmoid (Platt) "
            f"calibration learned from {training.get('calibration_folds', 5)}-fold cross-fitted scores of "
            "the same year. Settings chosen from a small fixed grid by log loss on a held-out 20% of the "
            f"training year (training period only): {json.dumps(manifest.get('settings', {}))}; "
            f"{training.get('boosting_iterations', '–')} boosting iterations (early stopping).",
        ]),
        ("Intended use and users", [
            "Ranks people registered with a GP practice by their risk of an emergency hospital "
            "admission in the next 12 months, so that GP practices can review high-risk lists, MDTs can "
            "assign lead professionals and agree care plans, and care navigators can manage caseloads. "
            "Commissioners see only suppressed counts of care-plan coverage.",
            "It supports a clinician's judgement; it never decides care on its own. Each flagged person "
            "is shown with the top three reasons for their score.",
        ]),
        ("Population and data", [
            f"Training population: {training.get('people', 0):,} people alive and registered on "
            f"{manifest['training_index_date']}; {_pct(training.get('event_rate'))} had an emergency "
            f"admission in the following 12 months. Records: {manifest.get('records', 'not recorded')}.",
            "The data are synthetic: a generated population calibrated to published figures for England "
            "and Leicester (QOF prevalence, Census age and ethnicity, admission rates by age and "
            "deprivation, eFI frailty bands). No real patient's data was used.",
        ]),
        ("Outcome", [
            f"{manifest['outcome'].capitalize()} (binary), from hospital encounter records; horizon "
            "12 months from the index date.",
        ]),
        ("Predictors", [
            "Known at the index date (events and diagnoses before it, the latest eFI and repeat-medicines "
            "count on or before it): "
            + ", ".join(FEATURE_TITLES.get(f, f) for f in manifest["features"])
            + f". Long-term conditions: {conditions} (a condition counts from its diagnosis date). "
            "Unknown ethnicity is its own category; unknown deprivation, frailty index and repeat "
            "medicines stay missing and the trees route them explicitly; each score lists the "
            "predictors that were unknown for that person.",
        ]),
        ("Validation design", [
            "Temporal validation: trained at index date T with outcomes in the 12 months after T; "
            "evaluated on everyone registered at T + 12 months with outcomes in the following 12 months. "
            "Records are cut at T + 12 months before training, so nothing from the evaluation year "
            "(outcomes, deaths, the generator's truth) reaches the model; a test proves it.",
        ]),
    ]
    if evaluation is None:
        cards.append(("Performance", ["Not evaluated yet: run `proactive-care evaluate`."]))
    else:
        population = evaluation["population"]
        cards.append(("Performance", [
            f"Evaluation index date {evaluation['evaluation_index_date']}: {population['people']:,} people, "
            f"{population['people_admitted']:,} admitted ({_pct(population['event_rate'])}), "
            f"{population['emergency_admissions']:,} emergency admissions.",
            (SUMMARY_HEADER, summary_rows(evaluation)),
            (["Method", "Top", "Flagged", "PPV", "Sensitivity", "Share of admissions"], [
                [METHOD_LABELS[m], k, f"{v['flagged']:,}", _pct(v["ppv"]), _pct(v["sensitivity"]),
                 _pct(v["share_of_admissions"])]
                for m, figures in evaluation["methods"].items() for k, v in figures.get("top", {}).items()
            ]),
            f"Capacity: reviewing {evaluation['capacity']['people_reviewable']:,} people means a cut-off at "
            f"the {evaluation['capacity']['cutoff_percentile']:.2f}th percentile, with "
            f"{evaluation['capacity']['expected_people_admitted']:.0f} admissions expected among them; "
            f"{capacity_advice(evaluation['capacity'])}.",
        ]))
        cards.append(("Fairness", [
            finding for result in evaluation["fairness"].values() for finding in result["findings"]
        ] + ["Full tables by sex, age band, ethnicity and IMD quintile: evaluation.html."]))
        top = list(evaluation["global_importance"])[:5]
        cards.append(("Explanations", [
            "Per person: SHAP values of the boosted margin (TreeExplainer), scaled to the calibrated "
            "log-odds, the top three turned into plain words. Globally the strongest predictors are "
            + ", ".join(FEATURE_TITLES.get(f, f) for f in top) + ".",
        ]))
    cards.append(("Limitations and when not to use it", [
        "Trained and validated on synthetic data only: its figures describe the generator, not a real "
        "population. Before any real use it must be retrained and validated on local records.",
        "Part of each person's risk in the generator is a hidden health state that drifts from year to "
        "year; the records show it only indirectly (GP, outpatient and A&E contacts, repeat medicines, "
        "frailty), so the model ranks a little below the generator's own probability (the oracle).",
        "Do not use it for people not registered with a GP practice, for children's safeguarding, to "
        "ration or withdraw care, or on populations whose coding or admission patterns differ from the "
        "training data without re-validation. Recalibrate when the admission rate shifts.",
        "It predicts admissions, not whether proactive care would prevent them; high risk is not the "
        "same as high benefit.",
    ]))
    cards.append(("Versions", [
        (["Library", "Version"], [[k, v] for k, v in manifest.get("libraries", {}).items()]),
    ]))
    return cards


def _markdown(title: str, cards) -> str:
    lines = [f"# {title}", ""]
    for heading, blocks in cards:
        lines += [f"## {heading}", ""]
        for block in blocks:
            if isinstance(block, tuple):
                header, rows = block
                lines.append("| " + " | ".join(header) + " |")
                lines.append("|" + "---|" * len(header))
                lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
            else:
                lines.append(str(block))
            lines.append("")
    return "\n".join(lines)


def _html(title: str, cards) -> str:
    parts = [f"<h1>{html.escape(title)}</h1>"]
    for heading, blocks in cards:
        parts.append(f"<h2>{html.escape(heading)}</h2>")
        for block in blocks:
            if isinstance(block, tuple):
                header, rows = block
                parts.append(
                    "<table><tr>" + "".join(f"<th>{html.escape(str(h))}</th>" for h in header) + "</tr>"
                    + "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
                    + "</table>"
                )
            else:
                parts.append(f"<p>{html.escape(str(block))}</p>")
    return (
        '<!doctype html><html><head><meta charset="utf-8"><title>Model card</title><style>'
        "body{font-family:sans-serif;max-width:1000px;margin:2em auto}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:4px 8px}</style></head><body>" + "".join(parts) + "</body></html>"
    )


def write_card(model_dir: str | Path) -> tuple[Path, Path]:
    """Write model_card.md and model_card.html into the model folder; returns their paths."""
    model_dir = Path(model_dir)
    manifest = read_manifest(model_dir)
    evaluation_path = model_dir / "evaluation.json"
    evaluation = json.loads(evaluation_path.read_text()) if evaluation_path.exists() else None
    cards = sections(manifest, evaluation)
    title = "Model card: Proactive Care emergency-admission risk (TRIPOD+AI)"
    (model_dir / CARD_MARKDOWN).write_text(_markdown(title, cards))
    (model_dir / CARD_HTML).write_text(_html(title, cards))
    return model_dir / CARD_MARKDOWN, model_dir / CARD_HTML
