"""Generator profiles: one TOML file per population (profiles/<name>.toml), numbers with sources.

A profile may say ``extends = "<other>"``; its tables are then merged over the other's, key by key.
"""

from __future__ import annotations

import tomllib
from functools import lru_cache
from pathlib import Path
from typing import Any

from features.errors import UserInputError

PROFILE_DIR = Path(__file__).resolve().parent / "profiles"
DATA_FILES = {"names"}  # TOML files in PROFILE_DIR that are not profiles


def available_profiles() -> tuple[str, ...]:
    return tuple(sorted(p.stem for p in PROFILE_DIR.glob("*.toml") if p.stem not in DATA_FILES))


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


@lru_cache(maxsize=None)
def _load(name: str) -> dict[str, Any]:
    if name not in available_profiles():
        raise UserInputError(
            f"Unknown profile '{name}'; choose one of: {', '.join(available_profiles())}."
        )
    with open(PROFILE_DIR / f"{name}.toml", "rb") as handle:
        profile = tomllib.load(handle)
    parent = profile.pop("extends", None)
    if parent:
        profile = _merge(_load(parent), profile)
    return profile


def load_profile(name: str) -> dict[str, Any]:
    """The merged parameters of profile ``name`` (a fresh copy the caller may not mutate deeply)."""
    return _load(name)


@lru_cache(maxsize=None)
def load_names() -> dict[str, Any]:
    with open(PROFILE_DIR / "names.toml", "rb") as handle:
        return tomllib.load(handle)
