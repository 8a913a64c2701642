"""A trained model is a folder: model.joblib beside manifest.json (and the card and report).

Loading checks the file's sha256 against the manifest and the scikit-learn major version it was
made with, and refuses with one sentence naming the file and the reason.
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

# joblib and model.training (scikit-learn, pandas) are imported inside save and load only: the
# loader and the app read manifests and hashes through this module and should not pay for them.
if TYPE_CHECKING:
    from model.training import FittedModel

MODEL_FILE = "model.joblib"
MANIFEST_FILE = "manifest.json"
LIBRARIES = ("scikit-learn", "pandas", "numpy", "shap", "joblib", "pyarrow")


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
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        raise UserInputError(f"The manifest {path} is not valid JSON.") from None


def write_manifest(model_dir: str | Path, manifest: dict) -> None:
    (Path(model_dir) / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2, sort_keys=False))


def update_manifest(model_dir: str | Path, **fields) -> dict:
    """Add or replace top-level manifest fields (e.g. evaluation results); the hash is untouched."""
    manifest = read_manifest(model_dir)
    manifest.update(fields)
    write_manifest(model_dir, manifest)
    return manifest


def save(model: FittedModel, model_dir: str | Path, **extra) -> dict:
    """Write model.joblib and manifest.json; returns the manifest."""
    import joblib

    from model.training import design_columns

    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    # A previous model's report and card in this folder no longer apply.
    for stale in model_dir.glob("evaluation*"):
        stale.unlink()
    path = model_dir / MODEL_FILE
    joblib.dump(model, path, compress=3)
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
    return read_manifest(model_dir)["sha256"]


def verified_model_file(model_dir: str | Path) -> tuple[Path, str, dict]:
    """(model file, its sha256, manifest), refusing a missing file or one its manifest does not match."""
    model_dir = Path(model_dir)
    manifest = read_manifest(model_dir)
    path = model_dir / manifest.get("model_file", MODEL_FILE)
    if not path.exists():
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
    """Load a model folder, refusing a tampered file or one from another scikit-learn major."""
    import joblib

    from model.training import FittedModel

    path, _, manifest = verified_model_file(model_dir)
    made_with = manifest.get("libraries", {}).get("scikit-learn", "unknown")
    running = metadata.version("scikit-learn")
    if _major(made_with) != _major(running):
        raise UserInputError(
            f"Refusing to load {path}: it was made with scikit-learn {made_with} and this is "
            f"scikit-learn {running}; retrain the model with this version."
        )
    model = joblib.load(path)
    if not isinstance(model, FittedModel):
        raise UserInputError(f"Refusing to load {path}: it does not hold a Proactive Care model.")
    return model
