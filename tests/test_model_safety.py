"""A model folder from elsewhere cannot run code: `score` and `evaluate` refuse it before anything in
it is executed, even when its manifest's sha256 has been recomputed to match."""

from __future__ import annotations

import json
import os
import pickle
from importlib import metadata
from pathlib import Path

import pytest

from app.cli import main
from features.errors import UserInputError
from model import persist


class Tripwire:
    """Leaves a file behind when it is built (unpickled, or constructed by a loader trusting it)."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):  # what pickle runs on load
        return (exec, (f"open({self.marker!r}, 'w').write('ran')",))

    def __setstate__(self, state):  # what skops would run if it trusted this type
        Path(state["marker"]).write_text("ran")


def _folder_with(folder: Path, file_name: str, content: bytes, manifest_name: str | None = None) -> Path:
    """A model folder whose manifest's sha256 matches ``content`` (an attacker can recompute it)."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / file_name
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(content)
    manifest = {"model_file": manifest_name or file_name, "sha256": persist.file_sha256(target),
                "libraries": {"scikit-learn": metadata.version("scikit-learn")}}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def _skops_payload(marker: Path) -> bytes:
    """A skops file holding a FittedModel whose parts name a type no Proactive Care model holds."""
    import skops.io

    from model.training import FittedModel

    return skops.io.dumps(FittedModel(calibrated=Tripwire(str(marker)), index_date="2024-01-01",
                                      settings={"hook": os.system}))


def _run(verb: str, model_dir: Path, tiny_inputs, tmp_path) -> list[str]:
    args = [verb, "--records", str(tiny_inputs["records"]), "--model", str(model_dir)]
    if verb == "score":
        args += ["--index-date", "2026-01-01", "--out", str(tmp_path / "scores.parquet")]
    return args


MALICIOUS = {
    "a pickle named as the manifest says": lambda d, m: _folder_with(d, "model.joblib", pickle.dumps(Tripwire(str(m)))),
    "a pickle dressed as a skops file": lambda d, m: _folder_with(d, "model.skops", pickle.dumps(Tripwire(str(m)))),
    "a skops file naming untrusted types": lambda d, m: _folder_with(d, "model.skops", _skops_payload(m)),
    "a pickle outside the folder": lambda d, m: _folder_with(d, "../outside.joblib", pickle.dumps(Tripwire(str(m)))),
    "a pickle in a subfolder": lambda d, m: _folder_with(d, "sub/model.joblib", pickle.dumps(Tripwire(str(m)))),
    "an absolute path": lambda d, m: _folder_with(d, "model.joblib", pickle.dumps(Tripwire(str(m))),
                                                  manifest_name=str((d / "model.joblib").resolve())),
}


@pytest.mark.parametrize("verb", ["score", "evaluate"])
@pytest.mark.parametrize("name", sorted(MALICIOUS))
def test_malicious_model_folder_is_refused_without_running_it(name, verb, tiny_inputs, tmp_path, capsys):
    marker = tmp_path / "code_ran"
    model_dir = MALICIOUS[name](tmp_path / "model", marker)
    status = main(_run(verb, model_dir, tiny_inputs, tmp_path))
    err = capsys.readouterr().err
    assert not marker.exists(), f"{name}: the model folder's code ran"
    assert status == 2, err
    assert "Traceback" not in err and err.count("\n") == 1 and "Refusing" in err, err
    assert not (tmp_path / "scores.parquet").exists()


def test_untrusted_types_are_named(tmp_path):
    model_dir = MALICIOUS["a skops file naming untrusted types"](tmp_path / "model", tmp_path / "code_ran")
    with pytest.raises(UserInputError, match=r"names 2 type\(s\) .*Tripwire.*was not made by"):
        persist.load(model_dir)


@pytest.mark.parametrize("name", ["../model.skops", "/etc/passwd", "sub/model.skops", "..", "", "a\\b", 7])
def test_manifest_names_only_plain_files(tmp_path, name):
    folder = _folder_with(tmp_path / "model", "model.skops", b"x")
    manifest = json.loads((folder / "manifest.json").read_text())
    (folder / "manifest.json").write_text(json.dumps({**manifest, "model_file": name}))
    with pytest.raises(UserInputError, match="is not a plain file name inside the folder"):
        persist.verified_model_file(folder)


def test_a_linked_model_file_is_refused(tmp_path):
    elsewhere = tmp_path / "elsewhere.skops"
    elsewhere.write_bytes(b"x")
    folder = _folder_with(tmp_path / "model", "model.skops", b"x")
    (folder / "model.skops").unlink()
    (folder / "model.skops").symlink_to(elsewhere)
    with pytest.raises(UserInputError, match="is a link"):
        persist.verified_model_file(folder)
