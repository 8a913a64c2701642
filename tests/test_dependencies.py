"""Dependencies: `make install` installs exactly requirements.lock (every package pinned with its
sha256 hashes), the lock covers pyproject.toml, and pip-audit finds no known vulnerability in it."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parent.parent
LOCK = REPO / "requirements.lock"
AUDIT_TIMEOUT_SECONDS = 240


def locked() -> dict[str, tuple[str, list[str]]]:
    """name -> (version, hashes) from the lock file."""
    text = LOCK.read_text().replace("\\\n", " ")
    pins = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        requirement, *options = line.split(" --")
        name, _, version = requirement.strip().partition("==")
        pins[canonicalize_name(name)] = (version, [o.strip() for o in options if o.startswith("hash=sha256:")])
    return pins


def test_the_lock_pins_every_dependency_with_hashes():
    pins = locked()
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    wanted = [*project["project"]["dependencies"], *project["project"]["optional-dependencies"]["test"],
              *project["build-system"]["requires"]]
    for text in wanted:
        requirement = Requirement(text)
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{name} is in pyproject.toml but not in requirements.lock: regenerate the lock"
        version, hashes = pins[name]
        assert requirement.specifier.contains(version, prereleases=True), (name, version, str(requirement.specifier))
    assert all(re.fullmatch(r"[\w.+!]+", version) and hashes for version, hashes in pins.values()), \
        [name for name, (version, hashes) in pins.items() if not hashes]
    makefile = (REPO / "Makefile").read_text()
    assert "pip install --quiet --require-hashes -r requirements.lock" in makefile
    assert "pip install --quiet --no-deps --no-build-isolation -e ." in makefile


def pip_audit(requirements: Path) -> dict:
    """pip-audit's JSON report for a hashed requirements file (skips the test when it cannot run)."""
    command = [sys.executable, "-m", "pip_audit", "--requirement", str(requirements), "--no-deps", "--disable-pip",
               "--progress-spinner", "off", "--format", "json", "--timeout", "20",
               "--cache-dir", str(Path.home() / ".cache" / "pip-audit")]
    try:
        run = subprocess.run(command, capture_output=True, text=True, timeout=AUDIT_TIMEOUT_SECONDS, cwd=REPO)
    except subprocess.TimeoutExpired:
        pytest.skip(f"pip-audit did not finish within {AUDIT_TIMEOUT_SECONDS} s (slow or no network); "
                    f"run `{HAND_RUN}` by hand")
    try:
        return json.loads(run.stdout)
    except ValueError:
        pytest.skip("pip-audit could not reach a vulnerability service (offline?): "
                    f"{(run.stderr.strip().splitlines() or ['no output'])[-1][:200]}; run `{HAND_RUN}` where it can")


HAND_RUN = ".venv/bin/pip-audit -r requirements.lock --no-deps --disable-pip"


def test_no_known_vulnerabilities_in_the_locked_versions(tmp_path):
    """pip-audit against the lock (PyPI's vulnerability data, cached under ~/.cache/pip-audit).
    Skipped, saying why, when that data cannot be reached from this machine: one package is asked
    first, so an unreachable service costs a second, not a query per package."""
    version, hashes = locked()["pip"]
    probe = tmp_path / "probe.txt"
    probe.write_text(f"pip=={version} " + " ".join(f"--{h}" for h in hashes) + "\n")
    if all("skip_reason" in d for d in pip_audit(probe)["dependencies"]):
        pytest.skip("pip-audit could not get vulnerability data from this machine (PyPI's JSON API answers "
                    f"'not found', as where only the package index is reachable); run `{HAND_RUN}` where it is")
    dependencies = pip_audit(LOCK)["dependencies"]
    vulnerable = {f"{d['name']} {d['version']}": [v["id"] for v in d.get("vulns", [])]
                  for d in dependencies if d.get("vulns")}
    assert not vulnerable, f"known vulnerabilities in requirements.lock: {vulnerable}; upgrade and regenerate the lock"
    unaudited = [d["name"] for d in dependencies if "skip_reason" in d]
    if unaudited:
        pytest.skip(f"pip-audit found no known vulnerability but could not audit {len(unaudited)} of "
                    f"{len(dependencies)} locked packages ({', '.join(unaudited[:5])}...); run `{HAND_RUN}` again")
