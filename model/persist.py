"""A trained model is a folder: model.skops beside manifest.json (and the card and report).

The model is saved with skops, a format that holds data, not code: loading builds only the types in
``TRUSTED_TYPES`` (skops's own safe scikit-learn and numpy types plus ours) and refuses a file that
names any other type before building anything, so a model folder from elsewhere cannot run code.
Loading also checks the file's sha256 against the manifest and the scikit-learn major version it
was made with, and refuses with one sentence naming the file and the reason. A manifest may name
its model file only by a plain file name inside the folder.
"""

from __future__ import annotations

import hashlib
import json
import platform
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

from features.errors import UserInputError

# skops and model.training (scikit-learn, pandas) are imported inside save and load only: the
# loader and the app read manifests and hashes through this module and should not pay for them.
if TYPE_CHECKING:
    from model.training import FittedModel

MODEL_FILE = "model.skops"
PICKLED_MODEL_FILE = "model.joblib"  # what folders made before skops hold (and manifests without model_file)
MANIFEST_FILE = "manifest.json"
LIBRARIES = ("scikit-learn", "pandas", "numpy", "shap", "skops", "pyarrow")
SKOPS_COMPRESSION_LEVEL = 6
# The types a Proactive Care model holds beyond those skops trusts by default (scikit-learn
# estimators, numpy arrays and ufuncs, builtins). A file naming anything else is refused.
TRUSTED_TYPES = (
    "model.training.FittedModel",
    "model.training.design_matrix",
    "sklearn.calibration._CalibratedClassifier",
    "sklearn.calibration._SigmoidCalibration",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.model_selection._split.StratifiedKFold",
)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in LIBRARIES:
        versions[name] = metadata.version(name)
    return versions


def read_manifest(model_dir: str | Path) -> dict:
    path = Path(model_dir) / MANIFEST_FILE
    if not Path(model_dir).is_dir():
        raise UserInputError(f"The model folder {model_dir} does not exist.")
    if not path.exists():
        raise UserInputError(f"The model folder {model_dir} has no {MANIFEST_FILE}; train a model into it first.")
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise UserInputError(f"The manifest {path} is not valid JSON.") from None
    if not isinstance(manifest, dict):
        raise UserInputError(f"The manifest {path} is not a JSON object.")
    return manifest


def write_manifest(model_dir: str | Path, manifest: dict) -> None:
    (Path(model_dir) / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2, sort_keys=False))


def update_manifest(model_dir: str | Path, **fields) -> dict:
    """Add or replace top-level manifest fields (e.g. evaluation results); the hash is untouched."""
    manifest = read_manifest(model_dir)
    manifest.update(fields)
    write_manifest(model_dir, manifest)
    return manifest


def save(model: FittedModel, model_dir: str | Path, **extra) -> dict:
    """Write model.skops and manifest.json; returns the manifest."""
    import skops.io
    from zipfile import ZIP_DEFLATED

    from model.training import design_columns

    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    # A previous model's report and card in this folder no longer apply, nor does an older pickle.
    for stale in [*model_dir.glob("evaluation*"), model_dir / PICKLED_MODEL_FILE]:
        stale.unlink(missing_ok=True)
    path = model_dir / MODEL_FILE
    skops.io.dump(model, path, compression=ZIP_DEFLATED, compresslevel=SKOPS_COMPRESSION_LEVEL)
    manifest = {
        "model_file": MODEL_FILE,
        "sha256": file_sha256(path),
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "outcome": "at least one emergency admission in the 12 months after the index date",
        "training_index_date": model.index_date,
        "evaluation_index_date": None,
        "features": list(model.predictors),
        "design_columns": design_columns(model.predictors),
        "settings": model.settings,
        "training": model.training_summary,
        "metrics": {},
        "libraries": library_versions(),
        **extra,
    }
    write_manifest(model_dir, manifest)
    return manifest


def model_sha256(model_dir: str | Path) -> str:
    """The sha256 of the model file as recorded in the manifest (what the store registers)."""
    sha = read_manifest(model_dir).get("sha256")
    if not isinstance(sha, str) or len(sha) != 64:
        raise UserInputError(f"The manifest in {model_dir} has no sha256 of its model file; retrain the model.")
    return sha


def model_file_name(manifest: dict, model_dir: str | Path) -> str:
    """The manifest's model file name, which must be a plain file name in the model folder."""
    name = manifest.get("model_file", PICKLED_MODEL_FILE)
    plain = (isinstance(name, str) and name not in ("", ".", "..") and "/" not in name and "\\" not in name
             and ":" not in name and "\0" not in name)
    if not plain:
        raise UserInputError(
            f"Refusing the model folder {model_dir}: its manifest names the model file {name!r}, which "
            "is not a plain file name inside the folder."
        )
    return name


def verified_model_file(model_dir: str | Path) -> tuple[Path, str, dict]:
    """(model file, its sha256, manifest), refusing a missing file, a file outside the folder (or a
    link), or one its manifest does not match."""
    model_dir = Path(model_dir)
    manifest = read_manifest(model_dir)
    path = model_dir / model_file_name(manifest, model_dir)
    if path.is_symlink():
        raise UserInputError(f"Refusing to load {path}: it is a link, not a file inside the model folder.")
    if not path.is_file():
        raise UserInputError(f"The model file {path} is missing.")
    actual = file_sha256(path)
    if actual != manifest.get("sha256"):
        raise UserInputError(
            f"Refusing to load {path}: its sha256 {actual[:12]}... does not match its manifest's "
            f"{str(manifest.get('sha256'))[:12]}..., so the file has been changed or replaced."
        )
    return path, actual, manifest


def _major(version: str) -> str:
    return version.split(".")[0]


def load(model_dir: str | Path) -> FittedModel:
    """Load a model folder without running anything from it: refuses a pickle, a tampered file, a
    file naming a type outside ``TRUSTED_TYPES``, and one from another scikit-learn major."""
    path, _, manifest = verified_model_file(model_dir)
    made_with = (manifest.get("libraries") or {}).get("scikit-learn", "unknown")
    running = metadata.version("scikit-learn")
    if _major(str(made_with)) != _major(running):
        raise UserInputError(
            f"Refusing to load {path}: it was made with scikit-learn {made_with} and this is "
            f"scikit-learn {running}; retrain the model with this version."
        )
    return _load_skops(path)


def _load_skops(path: Path) -> FittedModel:
    import zipfile

    import skops.io

    from model.training import FittedModel

    try:
        untrusted = sorted(set(skops.io.get_untrusted_types(file=path)) - set(TRUSTED_TYPES))
        if untrusted:
            raise UserInputError(
                f"Refusing to load {path}: it names {len(untrusted)} type(s) a Proactive Care model "
                f"does not hold ({', '.join(untrusted[:3])}{', ...' if len(untrusted) > 3 else ''}), "
                "so it was not made by `proactive-care train`."
            )
        model = skops.io.load(path, trusted=list(TRUSTED_TYPES))
    except zipfile.BadZipFile:
        raise UserInputError(
            f"Refusing to load {path}: it is not a skops model file (a pickle from an older version, "
            "or another file); retrain the model with `proactive-care train`."
        ) from None
    except UserInputError:
        raise
    except Exception as error:  # a damaged or hand-made skops file: one sentence, nothing built
        raise UserInputError(
            f"Refusing to load {path}: it cannot be read as a Proactive Care model ({type(error).__name__})."
        ) from None
    if not isinstance(model, FittedModel):
        raise UserInputError(f"Refusing to load {path}: it does not hold a Proactive Care model.")
    return model
