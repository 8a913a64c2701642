"""GP practices and Primary Care Networks: one table for the whole population, from (profile, N, seed).

Practices differ the way they do in life: a student practice (young, high turnover), a
care-home-heavy practice, deprived inner-city practices and suburban ones; each draws its list
from its own deprivation catchment, so per-practice figures vary.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

PRACTICE_STREAM = 1_000_003  # SeedSequence key of the practices' own random stream (not a block index)


@dataclass
class Practices:
    table: pd.DataFrame          # practice_code, practice_name, pcn_code, pcn_name, practice_type
    centre_decile: np.ndarray    # catchment centre (IMD decile)
    list_share: np.ndarray
    student: int                 # index of the student practice (-1 if none)
    care_home: int               # index of the care-home-heavy practice (-1 if none)


def make_practices(profile: dict, n_patients: int, seed: int) -> Practices:
    cfg = profile["practices"]
    rng = np.random.default_rng(np.random.SeedSequence([seed, PRACTICE_STREAM]))
    n = max(3, int(round(n_patients / cfg["mean_list_size"])))
    shares = np.array(profile["population"]["imd_decile_shares"], dtype=float)
    cum = np.cumsum(shares) / shares.sum()
    # catchment centres spread over the profile's own deprivation distribution (1 = most deprived)
    quantiles = (np.arange(n) + 0.5) / n
    # the decile at each practice's quantile, interpolated within the decile (continuous 1..10)
    centre = np.clip(np.interp(quantiles, np.concatenate([[0.0], cum]), np.arange(11) + 0.5), 1, 10)
    list_share = rng.lognormal(0.0, cfg["list_size_sd_log"], n)
    kinds = np.where(centre <= 2.5, "deprived inner-city", np.where(centre >= 6, "suburban", "urban"))
    student = n // 2 if n >= 4 else -1
    care_home = int(round(n * 0.8)) if n >= 4 else -1
    if student >= 0:
        kinds[student] = "student"
        list_share[student] *= 1.5
    if care_home >= 0:
        kinds[care_home] = "care-home-heavy"
    areas = list(cfg["area_names"])
    suffix = {"deprived inner-city": "Health Centre", "urban": "Medical Centre", "suburban": "Surgery",
              "student": "University Health Centre", "care-home-heavy": "Medical Practice"}
    names = []
    for i in range(n):
        area = areas[i % len(areas)] + ("" if i < len(areas) else f" {i // len(areas) + 1}")
        names.append(f"{area} {suffix[kinds[i]]}")
    per_pcn = cfg["practices_per_pcn"]
    pcn_index = np.arange(n) // per_pcn  # neighbours in deprivation share a PCN, like neighbours on a map
    n_pcn = pcn_index.max() + 1
    pcn_numbers = rng.choice(np.arange(10_000, 99_999), size=n_pcn, replace=False)
    pcn_codes = np.array([f"U{k:05d}" for k in pcn_numbers])
    pcn_names = np.array([f"{areas[(p * per_pcn) % len(areas)]} PCN" + ("" if p * per_pcn < len(areas) else f" {p + 1}")
                          for p in range(n_pcn)])
    prefixes = cfg["code_prefixes"]
    codes = [f"{prefixes[p % len(prefixes)]}{(i + 1):03d}" for i, p in enumerate(pcn_index)]
    table = pd.DataFrame({
        "practice_code": codes,
        "practice_name": names,
        "pcn_code": pcn_codes[pcn_index],
        "pcn_name": pcn_names[pcn_index],
        "practice_type": kinds,
    })
    return Practices(table, centre, list_share / list_share.sum(), student, care_home)


def assign_practices(rng: np.random.Generator, practices: Practices, profile: dict, imd: np.ndarray,
                     age: np.ndarray, care_home: np.ndarray) -> np.ndarray:
    """Each person's practice: mostly one whose catchment matches their deprivation."""
    cfg = profile["practices"]
    spread = cfg["catchment_spread"]
    weights = practices.list_share[None, :] * np.exp(-0.5 * ((imd[:, None] - practices.centre_decile[None, :]) / spread) ** 2)
    cum = np.cumsum(weights, axis=1)
    cum /= cum[:, -1:]
    chosen = (cum < rng.random(imd.size)[:, None]).sum(axis=1)
    u = rng.random(imd.size)
    if practices.student >= 0:
        student = (age >= 18) & (age < 25) & (u < cfg["student_share_18_24"])
        chosen[student] = practices.student
    if practices.care_home >= 0:
        resident = care_home & (u < cfg["care_home_practice_share"])
        chosen[resident] = practices.care_home
    return np.minimum(chosen, len(practices.centre_decile) - 1)
