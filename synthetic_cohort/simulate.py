"""One block of people through the years: arrivals with their history, then each calendar year
(risk on 1 January -> deaths, moves, births, newcomers -> hospital and GP use -> new diagnoses).

Everything is vectorised over the block; a block's random numbers come only from (seed, block
index), so the output does not depend on how blocks are spread over workers.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from features.conditions import CONDITION_CODES, ENCOUNTER_KINDS, ETHNIC_GROUPS, OBSERVATION_CODES
from synthetic_cohort.identifiers import draw_names
from synthetic_cohort.practices import Practices, assign_practices
from synthetic_cohort.profile import load_profile
from synthetic_cohort.story import (
    CONDITION_ORDER, CONTACT_KINDS, CONTACT_RATE_TARGETS, DAYS_PER_YEAR, NEVER, REFERENCE_SEED, REFERENCE_SIZE,
    USE_PROPENSITY, Story, _age_group,
)

EPOCH = np.datetime64("1970-01-01", "D")
KIND = {kind: i for i, kind in enumerate(ENCOUNTER_KINDS)}
CODE_OF_ORDER = np.array([CONDITION_CODES.index(c) for c in CONDITION_ORDER])  # story order -> code index


def day_of(year: int, month: int = 1, day: int = 1) -> int:
    return int((np.datetime64(f"{year:04d}-{month:02d}-{day:02d}", "D") - EPOCH).astype(int))


def age_at(dob: np.ndarray, day: int) -> np.ndarray:
    return (day - dob) / DAYS_PER_YEAR


def _bisect(f, target: float, lo: float = -30.0, hi: float = 10.0, steps: int = 45) -> float:
    """x with f(x) == target for an increasing f."""
    for _ in range(steps):
        mid = 0.5 * (lo + hi)
        if f(mid) < target:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def _draw_ages(rng, story: Story, cum: np.ndarray, n: int) -> np.ndarray:
    band = np.minimum(np.searchsorted(cum, rng.random(n), side="right"), len(cum) - 1)
    start, end = story.age_band_starts[band], story.age_band_ends[band]
    return start + rng.random(n) * (end - start)


def _categorical(rng, probabilities: np.ndarray) -> np.ndarray:
    """One draw per row of an (n, k) probability matrix."""
    cum = np.cumsum(probabilities, axis=1)
    return np.minimum((cum < rng.random(len(probabilities))[:, None] * cum[:, -1:]).sum(axis=1), probabilities.shape[1] - 1)


def new_people(rng, story: Story, practices: Practices | None, n: int, day: np.ndarray, kind: str,
               solve: bool = False) -> dict:
    """People arriving on ``day`` (an array): 'population' (already on the list at the start),
    'join' (registering from elsewhere, with their history) or 'birth' (``day`` is the birth date).
    With ``solve`` (the reference sample only), the profile's levels are solved on the way."""
    profile = story.profile
    pop = profile["population"]
    if kind == "birth":
        age = np.zeros(n)
    elif kind == "care_home":
        age = _draw_ages(rng, story, story.old_age_band_cum, n)
    else:
        age = _draw_ages(rng, story, story.age_band_cum if kind == "population" else story.join_age_cum, n)
    dob = (day - np.round(age * DAYS_PER_YEAR)).astype(np.int64)
    age = age_at(dob, day)
    female_share = np.array(pop["female_share"])[np.searchsorted(pop["female_share_ages"], age, side="right") - 1]
    female = rng.random(n) < female_share
    group = _age_group(age)
    eth = _categorical(rng, story.ethnicity_by_group[group])
    imd = 1 + _categorical(rng, story.imd_by_group[group])
    z = rng.standard_normal(n)
    w = 0.3 * z + 0.95 * rng.standard_normal(n)
    people = {
        "dob": dob, "female": female, "eth": eth, "imd": imd, "z": z, "w": w,
        "u_def": rng.random(n), "u_med": rng.random(n),
        "g_med": rng.gamma(profile["medicines"]["tendency_shape"], 1 / profile["medicines"]["tendency_shape"], n),
        "cum_adm": np.zeros(n), "prior": np.zeros(n),
        # Health drifts through the year, not on 1 January: each person's latent state moves once a
        # year on a day of their own (days after 1 January), so an index date sees the current state
        # in the months of records before it.
        "change_day": rng.integers(1, 365, n),
        **story.draw_use_propensities(rng, n),
    }
    # conditions already present on arrival, in story order; onset dates from the truncated hazard
    eff = story.effective_age(age, imd)
    has = np.zeros((n, len(CONDITION_ORDER)))
    onset = np.full((n, len(CONDITION_ORDER)), NEVER, dtype=np.int64)
    for c in range(len(CONDITION_ORDER)):
        log_m = story.condition_log_multiplier(c, female, eth, imd, z, has)
        h = story.cum_hazard(c, eff)
        if solve:
            denominator = age >= story.cond_min_age[c]
            target = story.cond[c]["prevalence"] / 100.0
            story.cond_level[c] = np.exp(_bisect(
                lambda lv: np.mean(-np.expm1(-np.exp(lv + log_m[denominator]) * h[denominator])), target))
        m = story.cond_level[c] * np.exp(log_m)
        p = -np.expm1(-m * h)
        got = rng.random(n) < p
        u = rng.random(n)
        h_onset = -np.log1p(-u[got] * p[got]) / m[got]
        onset_age = np.clip(story.inverse_cum_hazard(c, h_onset) - (eff[got] - age[got]), 0.0, age[got])
        onset[got, c] = np.minimum(dob[got] + np.round(onset_age * DAYS_PER_YEAR), day[got] - 1 if np.ndim(day) else day - 1)
        onset[got, c] = np.maximum(onset[got, c], dob[got])
        has[got, c] = 1.0
    people["onset"] = onset
    efi, _ = story.frailty(age, imd, has, z, w, people["u_def"], 0.0, people["g_med"], people["u_med"])
    score = story.care_home_log_score(age, has, efi)
    old = age >= 65
    if solve:
        target = profile["care_home"]["share_65_plus"] / 100.0
        story.care_home_level = _bisect(lambda lv: np.mean(np.minimum(np.exp(lv + score[old]), 0.9)), target)
    p_home = np.where(old, np.minimum(np.exp(story.care_home_level + score), 0.9), 0.0)
    people["care_home"] = rng.random(n) < p_home
    if kind == "care_home":
        people["care_home"][:] = True
        people["score"] = score
    people["practice"] = (assign_practices(rng, practices, profile, imd, age, people["care_home"])
                          if practices is not None else np.zeros(n, dtype=np.int64))
    if kind == "population":
        years_registered = rng.exponential(profile["registration"]["mean_years_registered"], n)
        people["reg_from"] = np.maximum(day - np.round(years_registered * DAYS_PER_YEAR), dob).astype(np.int64)
    elif kind == "birth":
        people["reg_from"] = (dob + rng.integers(7, 42, n)).astype(np.int64)
    else:
        people["reg_from"] = np.asarray(day, dtype=np.int64) + np.zeros(n, dtype=np.int64)
    people["reg_to"] = np.full(n, NEVER, dtype=np.int64)
    people["death"] = np.full(n, NEVER, dtype=np.int64)
    return people


def _state(story: Story, people: dict, day: int):
    age = age_at(people["dob"], day)
    has = (people["onset"] <= day).astype(float)
    efi, medicines = story.frailty(age, people["imd"], has, people["z"], people["w"], people["u_def"], people["cum_adm"],
                                   people["g_med"], people["u_med"])
    return age, has, efi, medicines


def admission_log_rate_before_latent(story: Story, people: dict, age, has, efi) -> np.ndarray:
    return story.admission_log_rate_before_latent(age, people["female"], people["imd"], has, efi,
                                                  people["care_home"], people["prior"])


def admission_log_rate(story: Story, people: dict, age, has, efi) -> np.ndarray:
    return story.capped_admission_log_rate(admission_log_rate_before_latent(story, people, age, has, efi), people["z"])


def _solve_admissions(story: Story, people: dict, day: int) -> None:
    """Intercepts per (age band, deprivation quintile) so that, with last year's admissions feeding
    this year's risk, the reference population meets the profile's rates by age and deprivation."""
    adm = story.profile["admissions"]
    age, has, efi, _ = _state(story, people, day)
    band = np.searchsorted(story.admission_band_starts, age, side="right") - 1
    quintile = (people["imd"] - 1) // 2
    ratio = np.array(adm["deprivation_ratio"])
    # geometric steps between quintiles, scaled so that equal quintiles average the band's rate
    steps = ratio[:, None] ** ((2 - np.arange(5))[None, :] / 4.0)
    # the published rates count readmissions too; the level solved here is for admissions before them
    readmitted = 1 + adm["readmission_within_30_days"]
    target = np.array(adm["per_1000"])[:, None] / 1000.0 / readmitted * steps / steps.mean(axis=1, keepdims=True)
    story.admission_target_log = np.log(target)
    story.admission_intercept = np.log(target)
    people["prior"] = np.zeros(len(age))
    uniforms = np.random.default_rng(REFERENCE_SEED + 1).random(len(age))
    for _ in range(6):
        rate = np.exp(admission_log_rate(story, people, age, has, efi))
        prior = _poisson_from_uniform(rate, uniforms)
        people["prior"] = prior
        rate = np.exp(admission_log_rate(story, people, age, has, efi))
        sums = np.zeros(target.shape)
        counts = np.zeros(target.shape)
        np.add.at(sums, (band, quintile), rate)
        np.add.at(counts, (band, quintile), 1)
        achieved = np.where(counts > 30, sums / np.maximum(counts, 1), target)
        story.admission_intercept += np.log(target / achieved)
    people["prior"] = np.zeros(len(age))


def _poisson_from_uniform(rate: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Poisson draws by inversion from given uniforms (stable across calibration iterations)."""
    k = np.zeros(rate.shape)
    p = np.exp(-rate)
    cum = p.copy()
    for i in range(1, 12):
        more = u > cum
        if not more.any():
            break
        k += more
        p = p * rate / i
        cum += p
    return k


@dataclass
class BlockResult:
    block: int
    people: dict          # arrays per person (local index = position)
    conditions: tuple     # (person, condition code index, day)
    encounters: tuple     # (person, day, kind index)
    observations: tuple   # (person, day, code index, value)
    truth: tuple          # (person, year, probability)


def _concat(a: dict, b: dict) -> dict:
    return {k: np.concatenate([a[k], b[k]]) for k in a}


def _events(rng, person: np.ndarray, counts: np.ndarray, start: np.ndarray, length: np.ndarray, kind: int):
    who = np.repeat(person, counts)
    days = np.repeat(start, counts) + (rng.random(who.size) * np.repeat(length, counts)).astype(np.int64)
    return who, days, np.full(who.size, kind, dtype=np.int8)


def _year_of_use(rng, story: Story, enc: list, person, begin, finish, change, states: tuple, state: tuple,
                 propensity: dict, ndays: int) -> np.ndarray:
    """A year of emergency admissions (and their readmissions), A&E, outpatient, elective and GP use
    for ``person`` (on the list from ``begin`` to ``finish``), in two spells: before and after this
    year's change of latent state (``states``: the state before and after). Appends the encounters to
    ``enc``; returns each person's emergency admissions."""
    before_latent, age, female, imd, n_conditions, efi, prior = state
    contacts = story.profile["contacts"]
    admissions = np.zeros(person.size)
    for z, spell_begin, spell_end in ((states[0], begin, np.minimum(finish, change)),
                                      (states[1], np.maximum(begin, change), finish)):
        spell = np.maximum(spell_end - spell_begin, 0)
        spell_fraction = spell / ndays
        counts = rng.poisson(np.exp(story.capped_admission_log_rate(before_latent, z)) * spell_fraction)
        admitted = np.repeat(np.arange(person.size), counts)
        who, days, _ = _events(rng, person, counts, spell_begin, spell, KIND["emergency_admission"])
        # an emergency readmission within 30 days of some of them (not part of the year's risk of a first one)
        again = rng.random(who.size) < story.profile["admissions"]["readmission_within_30_days"]
        again_days = days[again] + rng.integers(1, 31, again.sum())
        kept = again_days < finish[admitted[again]]
        np.add.at(counts, admitted[again][kept], 1)
        who, days = np.concatenate([who, who[again][kept]]), np.concatenate([days, again_days[kept]])
        admissions += counts
        enc.append((who, days, np.full(who.size, KIND["emergency_admission"], dtype=np.int8)))
        via_ae = rng.random(who.size) < contacts["ae_share_of_admissions"]
        enc.append((who[via_ae], days[via_ae], np.full(via_ae.sum(), KIND["ae_attendance"], dtype=np.int8)))
        rates = story.contact_rates(age, female, imd, n_conditions, efi, prior, z, propensity)
        for kind in CONTACT_KINDS:
            enc.append(_events(rng, person, rng.poisson(rates[kind] * spell_fraction), spell_begin, spell, KIND[kind]))
    return admissions


def simulate_block(story: Story, practices: Practices | None, n_patients: int, seed: int, block: int,
                   block_size: int, start_year: int, end_year: int) -> BlockResult:
    reg = story.profile["registration"]
    rho = story.profile["latent"]["persistence"]
    rng = np.random.default_rng(np.random.SeedSequence([seed, block]))
    n = min(block_size, n_patients - block * block_size)
    start = day_of(start_year)
    people = new_people(rng, story, practices, n, np.full(n, start), "population")
    # the year before the records start: only its emergency admissions, which shape the first year's risk
    age, has, efi, _ = _state(story, people, start)
    people["prior"] = rng.poisson(np.exp(admission_log_rate(story, people, age, has, efi))).astype(float)
    people["cum_adm"] = people["prior"].copy()
    enc, obs, truth = [], [], []
    leave_starts = np.array(reg["leave_age_starts"])
    leave_rate = np.array(reg["leave_rate"])
    for year in range(start_year, end_year + 1):
        jan1, next_jan1 = day_of(year), day_of(year + 1)
        ndays = next_jan1 - jan1
        active = np.flatnonzero((people["reg_from"] <= jan1) & (people["reg_to"] > jan1) & (people["death"] > jan1))
        sub = {k: v[active] for k, v in people.items()}
        age, has, efi, medicines = _state(story, sub, jan1)
        before_latent = admission_log_rate_before_latent(story, sub, age, has, efi)
        probability = story.year_admission_probability(before_latent, sub["z"], sub["change_day"] / ndays)
        truth.append((active, np.full(active.size, year, dtype=np.int16), probability))
        adult = age >= 18
        for code, values in (("efi", efi), ("repeat_medicines", medicines)):
            obs.append((active[adult], np.full(adult.sum(), jan1), np.full(adult.sum(), OBSERVATION_CODES.index(code), dtype=np.int8), values[adult]))
        # deaths and moves away during the year
        q = story.death_probability(age, sub["female"], has, efi, sub["care_home"], sub["z"])
        dies = rng.random(active.size) < q
        death_day = jan1 + 1 + (rng.random(active.size) * (ndays - 1)).astype(np.int64)  # on the list on 1 January
        leave_p = leave_rate[np.searchsorted(leave_starts, age, side="right") - 1] * np.where(sub["care_home"], 0.2, 1.0)
        leaves = ~dies & (rng.random(active.size) < leave_p)
        leave_day = jan1 + 1 + (rng.random(active.size) * (ndays - 1)).astype(np.int64)
        people["death"][active[dies]] = death_day[dies]
        people["reg_to"][active[dies]] = death_day[dies]
        people["reg_to"][active[leaves]] = leave_day[leaves]
        end = np.where(dies, death_day, np.where(leaves, leave_day, next_jan1))
        # births and newcomers (with their own history), registered part of the way through the year
        n_births = rng.poisson(reg["birth_rate"] * active.size)
        n_joins = rng.poisson(reg["join_rate"] * active.size)
        n_homes = rng.poisson(story.care_home_entrants * (age >= 65).sum())
        births = new_people(rng, story, practices, n_births, jan1 + (rng.random(n_births) * ndays).astype(np.int64), "birth")
        births["reg_from"] = np.minimum(births["reg_from"], next_jan1 - 1)
        joins = new_people(rng, story, practices, n_joins, jan1 + 1 + (rng.random(n_joins) * (ndays - 1)).astype(np.int64), "join")
        homes = care_home_entrants(rng, story, practices, n_homes, jan1, ndays)
        arrivals = _concat(_concat(births, joins), homes)
        first_new = len(people["dob"])
        people = _concat(people, arrivals)
        new_index = first_new + np.arange(len(arrivals["dob"]))
        new_age, new_has, new_efi, _ = _state(story, arrivals, jan1)
        new_before_latent = admission_log_rate_before_latent(story, arrivals, np.maximum(new_age, 0), new_has, new_efi)
        # a year of use for everyone on the list at some point in it
        person = np.concatenate([active, new_index])
        begin = np.concatenate([np.full(active.size, jan1), arrivals["reg_from"]])
        finish = np.concatenate([end, np.full(new_index.size, next_jan1)])
        length = np.maximum(finish - begin, 0)
        fraction = length / ndays
        before_latent_all = np.concatenate([before_latent, new_before_latent])
        p_all = {k: people[k][person] for k in ("z", "female", "imd", "prior")}
        age_all = np.maximum(age_at(people["dob"][person], jan1), 0)
        has_all = (people["onset"][person] <= jan1).astype(float)
        n_cond = has_all.sum(axis=1)
        efi_all = np.concatenate([efi, new_efi])
        z_after = rho * people["z"] + np.sqrt(1 - rho ** 2) * rng.standard_normal(len(people["z"]))
        change = jan1 + people["change_day"][person]
        state = (before_latent_all, age_all, p_all["female"], p_all["imd"], n_cond, efi_all, p_all["prior"])
        propensity = {key: people[key][person] * yearly for key, yearly in story.draw_yearly_propensities(rng, person.size).items()}
        admissions = _year_of_use(rng, story, enc, person, begin, finish, change, (p_all["z"], z_after[person]), state,
                                  propensity, ndays)
        people["prior"][person] = admissions
        people["cum_adm"][person] += admissions
        # new diagnoses during the year
        eff = story.effective_age(age_all, p_all["imd"])
        for c in range(len(CONDITION_ORDER)):
            free = has_all[:, c] == 0
            if not free.any():
                continue
            log_m = story.condition_log_multiplier(c, p_all["female"], people["eth"][person], p_all["imd"], p_all["z"], has_all)
            dh = story.cum_hazard(c, eff + 1) - story.cum_hazard(c, eff)
            p_onset = -np.expm1(-story.cond_level[c] * np.exp(log_m) * dh) * fraction
            onset = free & (rng.random(person.size) < p_onset)
            people["onset"][person[onset], c] = begin[onset] + (rng.random(onset.sum()) * length[onset]).astype(np.int64)
        people["z"] = z_after
    people["given_name"], people["family_name"] = draw_names(rng, people["eth"], people["female"], ETHNIC_GROUPS)
    holder, condition = np.nonzero(people["onset"] != NEVER)
    conditions = (holder, CODE_OF_ORDER[condition], people["onset"][holder, condition])
    return BlockResult(
        block=block,
        people=people,
        conditions=conditions,
        encounters=tuple(np.concatenate(parts) for parts in zip(*enc)),
        observations=tuple(np.concatenate(parts) for parts in zip(*obs)),
        truth=tuple(np.concatenate(parts) for parts in zip(*truth)),
    )


def care_home_entrants(rng, story: Story, practices: Practices | None, n: int, jan1: int, ndays: int) -> dict:
    """People moving into a care home this year and registering (mostly) with the care-home practice:
    drawn from older people in proportion to their care-home propensity (age, dementia, frailty)."""
    day = jan1 + 1 + (rng.random(4 * n) * (ndays - 1)).astype(np.int64)  # arrivals after 1 January
    candidates = new_people(rng, story, None, 4 * n, day, "care_home")
    score = candidates.pop("score")
    if n == 0:
        return candidates
    weights = np.exp(score - score.max())
    chosen = np.sort(rng.choice(4 * n, size=n, replace=False, p=weights / weights.sum()))
    people = {k: v[chosen] for k, v in candidates.items()}
    if practices is not None:
        people["practice"] = assign_practices(rng, practices, story.profile, people["imd"],
                                              age_at(people["dob"], jan1), people["care_home"])
    return people


# ---- calibration: levels solved so the simulated population (after its years of births, deaths and
# moves) meets the profile's published figures -----------------------------------------------------------
CALIBRATION_SIZE = 50_000
CALIBRATION_ROUNDS = 7
CALIBRATION_DAMPING = 0.5
CALIBRATION_YEARS = (2022, 2024)  # three simulated years, as before the last year of a default run
CACHE_DIR = Path(os.environ.get("PROACTIVE_CARE_CACHE", Path.home() / ".cache" / "proactive-care"))


def _base_story(profile_name: str) -> Story:
    """Levels solved on a cross-section of people as they arrive (a first guess)."""
    story = Story(load_profile(profile_name))
    rng = np.random.default_rng(REFERENCE_SEED)
    day = day_of(2023)
    people = new_people(rng, story, None, REFERENCE_SIZE, np.full(REFERENCE_SIZE, day), "population", solve=True)
    age, has, efi, _ = _state(story, people, day)
    cell = (story._death_band(age), people["female"].astype(int))
    sums, counts = np.zeros(story.death_norm.shape), np.zeros(story.death_norm.shape)
    np.add.at(sums, cell, np.exp(story.death_log_multiplier(has, efi, people["care_home"], people["z"])))
    np.add.at(counts, cell, 1)
    story.death_norm = np.where(counts > 20, sums / np.maximum(counts, 1), 1.0)
    _solve_admissions(story, people, day)
    return story


def _recalibrate(story: Story, result: "BlockResult", day: int) -> None:
    """One correction round from the simulated population's state on ``day`` (expected values, so no
    sampling noise from events): condition levels, admission intercepts, deaths, care-home share."""
    people = result.people
    on = (people["reg_from"] <= day) & (people["reg_to"] > day) & (people["death"] > day)
    sub = {k: v[on] for k, v in people.items()}
    age, has, efi, _ = _state(story, sub, day)
    for c in range(len(CONDITION_ORDER)):
        denominator = age >= story.cond_min_age[c]
        measured = has[denominator, c].mean()
        story.cond_level[c] *= story.cond[c]["prevalence"] / 100.0 / max(measured, 1e-6)
    band = np.searchsorted(story.admission_band_starts, age, side="right") - 1
    quintile = (sub["imd"] - 1) // 2
    rate = np.exp(admission_log_rate(story, sub, age, has, efi))
    # one damped correction per age band (the deprivation steps within a band stay as first solved):
    # admissions feed frailty and next year's risk, so undamped corrections overshoot
    target = np.exp(story.admission_target_log)[band, quintile]
    n_bands = story.admission_intercept.shape[0]
    achieved = np.bincount(band, weights=rate, minlength=n_bands)
    wanted = np.bincount(band, weights=target, minlength=n_bands)
    correction = np.log(np.where(achieved > 0, wanted / np.maximum(achieved, 1e-12), 1.0))
    story.admission_intercept += CALIBRATION_DAMPING * correction[:, None]
    # and within bands, the deprivation steps where the sample is large enough to see them
    cell = band * 5 + quintile
    size = np.bincount(cell, minlength=n_bands * 5)
    achieved = np.bincount(cell, weights=rate, minlength=n_bands * 5) * np.exp(CALIBRATION_DAMPING * correction).repeat(5)
    wanted = np.bincount(cell, weights=target, minlength=n_bands * 5)
    step = np.where(size > 300, np.log(np.maximum(wanted, 1e-12) / np.maximum(achieved, 1e-12)), 0.0)
    story.admission_intercept += CALIBRATION_DAMPING * step.reshape(n_bands, 5)
    q = story.death_probability(age, sub["female"], has, efi, sub["care_home"], sub["z"])
    life_table = np.exp(story._life_table(age, sub["female"]))
    cell = (story._death_band(age), sub["female"].astype(int))
    q_sum, lt_sum = np.zeros(story.death_norm.shape), np.zeros(story.death_norm.shape)
    np.add.at(q_sum, cell, q)
    np.add.at(lt_sum, cell, life_table)
    story.death_norm *= np.where(lt_sum > 0, q_sum / np.maximum(lt_sum, 1e-12), 1.0) ** CALIBRATION_DAMPING
    _solve_contact_levels(story, sub, age, has, efi)
    old = age >= 65
    share = sub["care_home"][old].mean()
    ratio = story.profile["care_home"]["share_65_plus"] / 100.0 / max(share, 1e-6)
    story.care_home_level += np.log(ratio)
    story.care_home_entrants *= ratio


def _solve_contact_levels(story: Story, people: dict, age, has, efi) -> None:
    """GP, outpatient and A&E levels so that the expected contacts per person-year meet the profile's
    published rates (A&E counting the attendances that come with an emergency admission). Nothing
    feeds back from these contacts, so one exact step per round suffices."""
    targets = story.profile["targets"]
    propensity = {key: people[key] for key, _ in USE_PROPENSITY.values()}
    rates = story.contact_rates(age, people["female"], people["imd"], has.sum(axis=1), efi, people["prior"],
                                people["z"], propensity)
    via_ae = story.profile["contacts"]["ae_share_of_admissions"] * np.exp(admission_log_rate(story, people, age, has, efi))
    for kind, target_name in CONTACT_RATE_TARGETS.items():
        target = float(targets[target_name]["value"])
        with_admissions = via_ae.mean() if kind == "ae_attendance" else 0.0
        wanted = max(target - with_admissions, 1e-3)
        story.contact_level[kind] += float(np.log(wanted / max(rates[kind].mean(), 1e-12)))


def _cache_key(profile_name: str) -> str:
    digest = hashlib.sha256(json.dumps(load_profile(profile_name), sort_keys=True).encode())
    for module in ("story.py", "simulate.py"):
        digest.update((Path(__file__).parent / module).read_bytes())
    digest.update(f"{CALIBRATION_SIZE}-{CALIBRATION_ROUNDS}-{CALIBRATION_DAMPING}-{CALIBRATION_YEARS}".encode())
    return digest.hexdigest()[:20]


@lru_cache(maxsize=None)
def calibrated_story(profile_name: str) -> Story:
    """The profile's story with its levels solved (same every run; cached on disk by profile and code)."""
    cache = CACHE_DIR / f"{profile_name}-{_cache_key(profile_name)}.pickle"
    if cache.exists():
        try:
            return pickle.loads(cache.read_bytes())
        except Exception:  # a damaged cache is simply rebuilt
            pass
    story = _base_story(profile_name)
    first, last = CALIBRATION_YEARS
    for _ in range(CALIBRATION_ROUNDS):
        result = simulate_block(story, None, CALIBRATION_SIZE, REFERENCE_SEED, 0, CALIBRATION_SIZE, first, last)
        _recalibrate(story, result, day_of(last + 1))
    try:
        CACHE_DIR.mkdir(parents=True, exist_ok=True)
        temporary = cache.with_suffix(f".{os.getpid()}.tmp")
        temporary.write_bytes(pickle.dumps(story))
        temporary.replace(cache)
    except OSError:
        pass
    return story
