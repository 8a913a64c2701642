"""Train the risk model: gradient-boosted trees on one index date, calibrated within training data.

The fitted object is a scikit-learn Pipeline (design matrix -> HistGradientBoostingClassifier),
fitted on every training person, wrapped in a sigmoid ``CalibratedClassifierCV`` whose calibration
comes from cross-fitted margins within the *training* period.
Sigmoid calibration is a monotone map of the boosted margin, so the ranking and the SHAP
explanations of the margin stay exactly consistent with the calibrated probability.

Nothing after ``index_date + 12 months`` is ever seen: ``records_until`` cuts the records there
before features are built, and the truth table is dropped.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import log_loss, roc_auc_score
from sklearn.model_selection import StratifiedKFold, train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from features.build import (
    LABEL,
    PREDICTOR_COLUMNS,
    build_features,
    parse_index_date,
    population_on,
)
from features.conditions import ETHNIC_GROUPS
from features.errors import UserInputError
from features.records import Records

RANDOM_STATE = 20240101
# Small, fixed search; each candidate is judged on a held-out part of the training period only.
HELD_OUT_FRACTION = 0.2
# The final model is fitted on every training person; its calibration comes from this many folds.
CALIBRATION_FOLDS = 5
MIN_PEOPLE_PER_OUTCOME = 2 * CALIBRATION_FOLDS
CANDIDATE_SETTINGS = (
    {"learning_rate": 0.06, "max_leaf_nodes": 15, "min_samples_leaf": 100, "l2_regularization": 1.0},
    {"learning_rate": 0.06, "max_leaf_nodes": 31, "min_samples_leaf": 200, "l2_regularization": 1.0},
)



@contextmanager
def model_threads():
    """OpenMP threads for fitting and predicting (PROACTIVE_CARE_THREADS, default 1).

    On a small shared machine OpenMP's busy-waiting threads slow boosting down ten-fold when other
    processes compete for the cores; one thread is predictable. Raise it on a dedicated machine.
    """
    with threadpool_limits(limits=int(os.environ.get("PROACTIVE_CARE_THREADS", "1"))):
        yield


# Design-matrix column -> the feature it came from (one-hot ethnicity collapses back to one).
ETHNICITY_COLUMNS = tuple(f"ethnicity_{group.lower()}" for group in ETHNIC_GROUPS) + (
    "ethnicity_unknown",
)


def design_matrix(features: pd.DataFrame) -> pd.DataFrame:
    """Numeric model inputs. Unknown IMD, eFI and repeat medicines stay NaN (the trees route
    missing values on their own); unknown ethnicity is its own explicit category."""
    columns = {}
    for name in [column for column in PREDICTOR_COLUMNS if column in features.columns]:
        if name == "sex":
            columns["sex_female"] = (features["sex"] == "F").astype(np.float64).to_numpy()
        elif name == "ethnicity":
            ethnicity = features["ethnicity"].astype("string")
            for group, column in zip(ETHNIC_GROUPS, ETHNICITY_COLUMNS):
                columns[column] = (ethnicity == group).fillna(False).astype(np.float64).to_numpy()
            columns["ethnicity_unknown"] = ethnicity.isna().astype(np.float64).to_numpy()
        else:
            columns[name] = pd.to_numeric(features[name]).astype(np.float64).to_numpy()
    return pd.DataFrame(columns, index=features.index)


def design_columns(predictors=PREDICTOR_COLUMNS) -> list[str]:
    """The design matrix's column names, in order."""
    names = []
    for name in [column for column in PREDICTOR_COLUMNS if column in predictors]:
        if name == "sex":
            names.append("sex_female")
        elif name == "ethnicity":
            names.extend(ETHNICITY_COLUMNS)
        else:
            names.append(name)
    return names


def source_feature(design_column: str) -> str:
    """The feature-table column a design-matrix column came from."""
    if design_column == "sex_female":
        return "sex"
    if design_column in ETHNICITY_COLUMNS:
        return "ethnicity"
    return design_column


def make_pipeline(settings: dict) -> Pipeline:
    return Pipeline(
        [
            ("design", FunctionTransformer(design_matrix, validate=False)),
            (
                "boosting",
                HistGradientBoostingClassifier(
                    max_iter=500,
                    early_stopping=True,
                    validation_fraction=0.15,
                    n_iter_no_change=20,
                    scoring="loss",
                    random_state=RANDOM_STATE,
                    **settings,
                ),
            ),
        ]
    )


@dataclass
class FittedModel:
    """What `train` returns and `persist` saves."""

    calibrated: CalibratedClassifierCV
    index_date: str
    predictors: tuple[str, ...] = PREDICTOR_COLUMNS
    settings: dict = field(default_factory=dict)
    training_summary: dict = field(default_factory=dict)

    @property
    def pipeline(self) -> Pipeline:
        return self.calibrated.calibrated_classifiers_[0].estimator

    @property
    def boosting(self) -> HistGradientBoostingClassifier:
        return self.pipeline.named_steps["boosting"]

    @property
    def calibration_slope(self) -> float:
        """Calibrated log-odds = slope * boosted margin + intercept (sigmoid calibration)."""
        calibrator = self.calibrated.calibrated_classifiers_[0].calibrators[0]
        return float(-calibrator.a_)

    def predict_probability(self, features: pd.DataFrame) -> np.ndarray:
        with model_threads():
            return self.calibrated.predict_proba(features[list(self.predictors)])[:, 1]


def records_until(records: Records, cutoff: pd.Timestamp) -> Records:
    """The records as they stood the day before ``cutoff``: later events are dropped, later deaths
    and de-registrations are not yet known, and the generator's truth is removed."""
    patients = records.patients.copy()
    for column in ("registered_to", "date_of_death"):
        dates = pd.to_datetime(patients[column])
        patients[column] = dates.where(dates < cutoff)
    patients = patients.loc[pd.to_datetime(patients["registered_from"]) < cutoff]

    def before(frame: pd.DataFrame | None, column: str) -> pd.DataFrame | None:
        if frame is None:
            return None
        return frame.loc[pd.to_datetime(frame[column]) < cutoff]

    return Records(
        patients=patients,
        practices=records.practices,
        conditions=before(records.conditions, "diagnosed_on"),
        encounters=before(records.encounters, "date"),
        observations=before(records.observations, "date"),
        truth=None,
        source=records.source,
    )


def require_people(records: Records, index_date: pd.Timestamp, purpose: str) -> None:
    if population_on(records.patients, index_date).empty:
        raise UserInputError(
            f"No one in {records.source or 'the records'} is alive and registered on "
            f"{index_date:%Y-%m-%d}, so there is no one to {purpose}."
        )


def training_features(records: Records, index_date: str | pd.Timestamp) -> pd.DataFrame:
    """Features and label at the training date, from records cut at the end of the label year."""
    index_date = parse_index_date(index_date)
    visible = records_until(records, index_date + pd.DateOffset(months=12))
    require_people(visible, index_date, "train on")
    features = build_features(visible, index_date, with_label=True)
    admitted = int(features[LABEL].sum())
    fewer = min(admitted, len(features) - admitted)
    if fewer < MIN_PEOPLE_PER_OUTCOME:  # the calibration folds need both outcomes in each
        what = "had an emergency admission" if admitted == fewer else "had no emergency admission"
        raise UserInputError(
            f"Only {fewer:,} of the {len(features):,} people in {records.source or 'the records'} "
            f"registered on {index_date:%Y-%m-%d} {what} in the next 12 months; training needs at "
            f"least {MIN_PEOPLE_PER_OUTCOME} people with and {MIN_PEOPLE_PER_OUTCOME} without one."
        )
    return features


def fit(features: pd.DataFrame, index_date: str, progress=None) -> FittedModel:
    """Fit on a labelled feature table from ``training_features`` (all from the training period).

    The candidate settings are compared on a held-out part of the training people; the chosen
    pipeline is then fitted on everyone, with its sigmoid calibration learned from cross-fitted
    margins (each fold's model scores the people it did not see), so no training person is left out.
    """
    # A predictor never recorded in this population (e.g. no observations table) is left out.
    predictors = tuple(c for c in PREDICTOR_COLUMNS if features[c].notna().any())
    X = features[list(predictors)]
    y = features[LABEL].to_numpy()
    X_fit, X_held_out, y_fit, y_held_out = train_test_split(
        X, y, test_size=HELD_OUT_FRACTION, stratify=y, random_state=RANDOM_STATE
    )
    best = None
    for settings in CANDIDATE_SETTINGS:
        with model_threads():
            pipeline = make_pipeline(settings).fit(X_fit, y_fit)
            probability = pipeline.predict_proba(X_held_out)[:, 1]
        loss = log_loss(y_held_out, probability)
        if best is None or loss < best[0]:
            best = (loss, settings, roc_auc_score(y_held_out, probability))
        if progress is not None:
            progress.update(1)
    loss, settings, held_out_auroc = best
    folds = StratifiedKFold(CALIBRATION_FOLDS, shuffle=True, random_state=RANDOM_STATE)
    calibrated = CalibratedClassifierCV(make_pipeline(settings), method="sigmoid", cv=folds, ensemble=False)
    with model_threads():
        calibrated.fit(X, y)
    if progress is not None:
        progress.update(1)
    model = FittedModel(calibrated=calibrated, index_date=str(index_date), predictors=predictors,
                        settings=dict(settings))
    model.training_summary = {
        "people": int(len(features)),
        "event_rate": float(y.mean()),
        "held_out_auroc": float(held_out_auroc),
        "held_out_log_loss": float(loss),
        "calibration_folds": CALIBRATION_FOLDS,
        "boosting_iterations": int(model.boosting.n_iter_),
    }
    return model


def train(records: Records, index_date: str | pd.Timestamp, progress=None) -> FittedModel:
    """Train on people registered on ``index_date`` and their next 12 months."""
    index_date = parse_index_date(index_date)
    features = training_features(records, index_date)
    return fit(features, f"{index_date:%Y-%m-%d}", progress=progress)
