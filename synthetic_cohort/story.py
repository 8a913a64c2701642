"""The generative story: who people are, which conditions they get, how frail they become, how
often they use hospitals and GPs, and when they die. Plain vectorised numpy over arrays of people.

Every number comes from the profile (profiles/<name>.toml). Levels that the profile gives as a
published target (condition prevalence, admissions per 1,000 by age and deprivation, care-home
share, life-table deaths) are solved once on a fixed reference sample, so they are met by
construction; the shapes and relative risks around them are the profile's.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.special import gammaincinv, ndtr

from features.conditions import CONDITION_CODES, ETHNIC_GROUPS
from synthetic_cohort.profile import load_profile

DAYS_PER_YEAR = 365.25
NEVER = np.iinfo(np.int32).max  # "no date" for onset, death, leaving
REFERENCE_SIZE = 120_000
REFERENCE_SEED = 20_240_101
AGE_GROUP_EDGES = (18, 65)  # <18, 18-64, 65+ for age-dependent ethnicity and deprivation
# Contacts other than emergency admissions, each with the profile's [targets] rate that solves its level.
CONTACT_KINDS = ("gp_consultation", "outpatient", "ae_attendance", "elective_admission")
CONTACT_RATE_TARGETS = {"gp_consultation": "gp_appointments_per_person_year",
                        "outpatient": "outpatient_attendances_per_person_year",
                        "ae_attendance": "ae_attendances_per_person_year"}
# Each person's own propensity to use a service (over-dispersion): a gamma with mean 1 and the
# profile's shape, fixed for the person; the key in a block's people and the profile's shape setting.
USE_PROPENSITY = {"gp_consultation": ("use_gp", "gp_shape"), "outpatient": ("use_outpatient", "outpatient_shape"),
                  "ae_attendance": ("use_ae", "ae_shape")}

# Order in which conditions are drawn for people who arrive with a history: a condition can raise the
# risk of the ones after it ("raises" in the profile); during the simulated years every pair applies.
CONDITION_ORDER = (
    "learning_disability", "epilepsy", "asthma", "smi", "hypertension", "diabetes",
    "rheumatoid_arthritis", "copd", "depression", "ckd", "chd", "atrial_fibrillation",
    "heart_failure", "stroke_tia", "pad", "dementia", "cancer", "osteoporosis",
)
assert sorted(CONDITION_ORDER) == sorted(CONDITION_CODES)


def _standard_normal_nodes(count: int = 24) -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Hermite nodes and weights (summing to 1) for an expectation over a standard normal."""
    nodes, weights = np.polynomial.hermite_e.hermegauss(count)
    return nodes, weights / weights.sum()


STANDARD_NORMAL_NODES = _standard_normal_nodes()


def _age_group(age: np.ndarray) -> np.ndarray:
    return np.searchsorted(np.array(AGE_GROUP_EDGES), age, side="right")


def _fit_conditional(marginal: np.ndarray, group_weights: np.ndarray, odds: np.ndarray) -> np.ndarray:
    """P(category | age group) proportional to base * odds[group], with base fitted (iterative
    proportional fitting) so that the population marginal over age groups stays ``marginal``."""
    base = marginal.copy()
    for _ in range(50):
        conditional = base[None, :] * odds
        conditional /= conditional.sum(axis=1, keepdims=True)
        implied = group_weights @ conditional
        base *= marginal / implied
    conditional = base[None, :] * odds
    return conditional / conditional.sum(axis=1, keepdims=True)


@dataclass
class Story:
    profile: dict
    # population
    age_band_starts: np.ndarray = field(init=False)
    age_band_cum: np.ndarray = field(init=False)
    join_age_cum: np.ndarray = field(init=False)
    ethnicity_by_group: np.ndarray = field(init=False)   # (3 age groups, 5)
    imd_by_group: np.ndarray = field(init=False)         # (3 age groups, 10)
    # conditions, in CONDITION_ORDER
    cond_level: np.ndarray = field(init=False)           # solved onset level per condition
    # solved levels
    care_home_level: float = field(init=False, default=0.0)
    death_norm: np.ndarray = field(init=False)           # (age bands of 5 years, 2 sexes)
    admission_intercept: np.ndarray = field(init=False)  # (admission age bands, 5 quintiles)

    def __post_init__(self) -> None:
        pop = self.profile["population"]
        self.age_band_starts = np.array(pop["age_band_starts"], dtype=float)
        self.age_band_ends = np.append(self.age_band_starts[1:], pop["oldest_age"])
        shares = np.array(pop["age_band_shares"], dtype=float)
        self.age_band_cum = np.cumsum(shares) / shares.sum()
        old_shares = np.where(self.age_band_starts >= 65, shares, 0.0)
        self.old_age_band_cum = np.cumsum(old_shares) / old_shares.sum()
        self.care_home_entrants = float(self.profile["care_home"]["entrants_per_person_65_plus"])
        join = np.array(self.profile["registration"]["join_age_band_shares"], dtype=float)
        self.join_age_cum = np.cumsum(join) / join.sum()
        group = _age_group(self.age_band_starts)
        group_weights = np.bincount(group, weights=shares, minlength=3) / shares.sum()
        eth = pop["ethnicity"]
        eth_marginal = np.array([eth[g] for g in ETHNIC_GROUPS], dtype=float)
        eth_marginal /= eth_marginal.sum()
        minority = np.array([g != "White" for g in ETHNIC_GROUPS])
        eth_odds = np.ones((3, len(ETHNIC_GROUPS)))
        eth_odds[0, minority] = pop["ethnicity_minority_odds_under_18"]
        eth_odds[2, minority] = pop["ethnicity_minority_odds_65_plus"]
        self.ethnicity_by_group = _fit_conditional(eth_marginal, group_weights, eth_odds)
        imd_marginal = np.array(pop["imd_decile_shares"], dtype=float)
        imd_marginal /= imd_marginal.sum()
        imd_odds = np.ones((3, 10))
        imd_odds[2] = pop["imd_old_age_deprivation_odds"] ** self.dep_score(np.arange(1, 11))
        self.imd_by_group = _fit_conditional(imd_marginal, group_weights, imd_odds)
        conds = self.profile["conditions"]
        self.cond = [conds[c] for c in CONDITION_ORDER]
        n = len(CONDITION_ORDER)
        index = {c: i for i, c in enumerate(CONDITION_ORDER)}
        self.raises = np.ones((n, n))  # raises[i, j]: hazard ratio on j for people with i
        for i, c in enumerate(self.cond):
            for other, ratio in c["raises"].items():
                self.raises[i, index[other]] = ratio
        self.log_raises = np.log(self.raises)
        self.cond_female = np.log([c["female"] for c in self.cond])
        self.cond_dep = np.log([c["deprivation"] for c in self.cond])
        self.cond_eth = np.log([[c["ethnicity"].get(g, 1.0) for g in ETHNIC_GROUPS] for c in self.cond])
        self.cond_admission = np.array([c["admission"] for c in self.cond])
        self.cond_death = np.array([c["death"] for c in self.cond])
        self.cond_medicines = np.array([c["medicines"] for c in self.cond])
        self.cond_efi = np.array([c["efi"] for c in self.cond], dtype=float)
        self.cond_min_age = np.array([c["min_age"] for c in self.cond], dtype=float)
        # cumulative hazard shape per condition on a 0.5-year grid of effective age
        self.grid = np.arange(0.0, 131.0, 0.5)
        shapes = []
        for c in self.cond:
            shape = np.interp(self.grid, c["ages"], c["shape"])
            shape = np.maximum.accumulate(shape) + self.grid * 1e-9  # strictly increasing for inversion
            shapes.append(shape)
        self.shape = np.array(shapes)
        self.cond_level = np.ones(n)
        self.death_norm = np.ones((21, 2))
        adm = self.profile["admissions"]
        self.admission_band_starts = np.array(adm["band_starts"], dtype=float)
        self.admission_intercept = np.zeros((len(adm["band_starts"]), 5))
        contacts = self.profile["contacts"]
        # log levels of the contact rates (solved at start-up for kinds with a published rate)
        self.contact_level = {kind: float(np.log(contacts[f"{kind}_base"])) for kind in CONTACT_KINDS}
        mort = self.profile["mortality"]
        self.mort_ages = np.array(mort["ages"], dtype=float)
        self.mort_log = np.log(np.array([mort["male"], mort["female"]], dtype=float))

    # ---- helpers ----------------------------------------------------------------------------
    @staticmethod
    def dep_score(imd: np.ndarray) -> np.ndarray:
        """-0.5 (least deprived decile) .. +0.5 (most deprived)."""
        return (5.5 - np.asarray(imd, dtype=float)) / 9.0

    def effective_age(self, age: np.ndarray, imd: np.ndarray) -> np.ndarray:
        shift = 2 * self.profile["deprivation"]["age_shift_years"] * self.dep_score(imd)
        return np.clip(age + shift, 0.0, 130.0)

    def cum_hazard(self, c: int, eff_age: np.ndarray) -> np.ndarray:
        return np.interp(eff_age, self.grid, self.shape[c])

    def inverse_cum_hazard(self, c: int, h: np.ndarray) -> np.ndarray:
        return np.interp(h, self.shape[c], self.grid)

    def condition_log_multiplier(self, c: int, female, eth, imd, z, has: np.ndarray) -> np.ndarray:
        """Log hazard multiplier of condition c (without the level) given present conditions."""
        return (self.cond_female[c] * female + self.cond_eth[c][eth] + self.cond_dep[c] * 2 * self.dep_score(imd)
                + self.profile["latent"]["condition_log_rr"] * z + has @ self.log_raises[:, c])

    # ---- frailty, medicines ------------------------------------------------------------------
    def frailty(self, age, imd, has, z, w, u_def, cum_adm, g_med, u_med):
        """(eFI 0..1, repeat medicines) for people at ``age`` with conditions ``has`` and current latent
        health state ``z``: a sicker spell shows as more deficits and more repeat medicines."""
        fr = self.profile["frailty"]
        med = self.profile["medicines"]
        latent = self.profile["latent"]
        eff = self.effective_age(age, imd)
        other = fr["other_level"] * np.exp(fr["other_age_log_slope"] * (eff - 65) + fr["other_sd_log"] * w
                                           + latent["frailty_log_rr"] * z)
        other = np.minimum(np.floor(other + u_def + fr["deficits_per_admission"] * cum_adm), fr["max_other_deficits"])
        base_meds = ((med["base_mean"] + med["per_year_over_30"] * np.maximum(age - 30, 0)) * g_med
                     * self.health_multiplier(z, latent["medicines_health_shape"]))
        medicines = np.floor(self.saturate(base_meds + has @ self.cond_medicines, med["ceiling"]) + u_med)
        deficits = has @ self.cond_efi + (medicines >= fr["polypharmacy_threshold"]) + other
        return np.minimum(deficits, 36) / 36.0, medicines

    # ---- rates -----------------------------------------------------------------------------------
    def admission_log_rate_before_latent(self, age, female, imd, has, efi, care_home, prior):
        """Everything in the log rate but the latent state and the ceiling."""
        adm = self.profile["admissions"]
        band = np.searchsorted(self.admission_band_starts, age, side="right") - 1
        quintile = (np.asarray(imd) - 1) // 2
        # conditions and frailty overlap, so their joint effect saturates (real multimorbidity risk is
        # sub-multiplicative): at most exp(cap) times the risk of someone without either
        burden = has @ self.cond_admission + adm["efi_log_rr_per_unit"] * efi
        cap = adm["burden_log_rr_cap"]
        return (self.admission_intercept[band, quintile] + cap * np.tanh(burden / cap)
                + adm["care_home_log_rr"] * care_home
                + adm["prior_admission_log_rr"] * np.log1p(np.minimum(prior, 5)) + adm["female_log_rr"] * female)

    def capped_admission_log_rate(self, before_latent, z):
        adm = self.profile["admissions"]
        return np.minimum(before_latent + adm["latent_log_rr"] * z, np.log(adm["max_expected_admissions"]))

    def year_admission_probability(self, before_latent, z, share_before_change):
        """P(at least one emergency admission in the year) for someone on the list all year whose latent
        state is ``z`` until their change day (``share_before_change`` of the year) and then
        ``persistence * z + innovation``; the innovation, not yet drawn on 1 January, is integrated out."""
        rho = self.profile["latent"]["persistence"]
        rate_now = np.exp(self.capped_admission_log_rate(before_latent, z))
        no_admission_after = np.zeros(np.shape(rate_now))
        for node, weight in zip(*STANDARD_NORMAL_NODES):
            later = np.exp(self.capped_admission_log_rate(before_latent, rho * z + np.sqrt(1 - rho**2) * node))
            no_admission_after += weight * np.exp(-later * (1 - share_before_change))
        return 1 - np.exp(-rate_now * share_before_change) * no_admission_after

    # ---- other contacts -----------------------------------------------------------------------
    def draw_use_propensities(self, rng, n: int) -> dict[str, np.ndarray]:
        """Each person's own tendency to use GP, outpatient and A&E services, gamma with mean 1:
        the over-dispersion of real counts (a negative binomial once the Poisson draw is added),
        with the profile's shapes fitted to the published shares of frequent attenders."""
        contacts = self.profile["contacts"]
        return {key: rng.gamma(contacts[shape], 1.0 / contacts[shape], n) for key, shape in USE_PROPENSITY.values()}

    def draw_yearly_propensities(self, rng, n: int) -> dict[str, np.ndarray]:
        """This year's part of the same tendencies (a bad year with a short illness), drawn afresh each
        year: frequent attendance is mostly short-lived, only partly a lasting trait."""
        contacts = self.profile["contacts"]
        return {key: rng.gamma(contacts[f"yearly_{shape}"], 1.0 / contacts[f"yearly_{shape}"], n)
                for key, shape in USE_PROPENSITY.values()}

    @staticmethod
    def health_multiplier(z, shape: float) -> np.ndarray:
        """The latent state as a multiplier on service use: gamma with mean 1 and ``shape``, a
        monotone function of z (the gamma quantile of z's normal probability). A sicker state means
        more contacts, but the tail is a gamma's (as in real counts), not a log-normal's."""
        return np.maximum(gammaincinv(shape, ndtr(z)) / shape, 1e-12)

    def contact_rates(self, age, female, imd, n_conditions, efi, prior, z, propensity: dict) -> dict[str, np.ndarray]:
        """Expected contacts of each kind per person-year (A&E without the attendances that lead to an
        emergency admission, which come with the admission)."""
        c = self.profile["contacts"]
        latent = np.log(self.health_multiplier(z, c["health_shape"]))
        power = c["health_power"]
        per_condition = c["per_condition_log_rr"] * n_conditions
        ae_age = np.log(1 + 0.5 * (age < 5) + 0.3 * ((age >= 18) & (age < 30)) + 0.6 * (age >= 80))
        log_rates = {
            "ae_attendance": (ae_age + power["ae_attendance"] * latent + c["ae_deprivation_log_rr"] * 2 * self.dep_score(imd)
                              + c["ae_prior_admission_log_rr"] * np.minimum(prior, 3)),
            "outpatient": power["outpatient"] * latent + per_condition + 0.01 * (age - 40),
            "elective_admission": per_condition + 0.025 * (age - 40),
            "gp_consultation": (power["gp_consultation"] * latent + per_condition + c["efi_log_rr_per_unit"] * efi + c["female_gp_log_rr"] * female
                                + 0.5 * (age < 5)),
        }
        rates = {kind: np.exp(self.contact_level[kind] + log_rate) for kind, log_rate in log_rates.items()}
        for kind, (key, _) in USE_PROPENSITY.items():
            rates[kind] = self.saturate(rates[kind] * propensity[key], c[f"{kind}_ceiling"])
        return rates

    @staticmethod
    def saturate(rate, ceiling: float):
        """A rate that rises with need but levels off below ``ceiling`` (a service sees a person only so
        often): about the rate itself while it is well below the ceiling, never above it."""
        return ceiling * np.tanh(rate / ceiling)

    def _death_band(self, age):
        return np.minimum((age // 5).astype(int), 20)

    def death_log_multiplier(self, has, efi, care_home, z):
        mort = self.profile["mortality"]
        burden = has @ self.cond_death + mort["efi_log_rr_per_unit"] * efi
        cap = mort["burden_log_rr_cap"]
        return cap * np.tanh(burden / cap) + mort["care_home_log_rr"] * care_home + mort["latent_log_rr"] * z

    def death_probability(self, age, female, has, efi, care_home, z):
        life_table = np.exp(self._life_table(age, female))
        multiplier = np.exp(self.death_log_multiplier(has, efi, care_home, z))
        return np.minimum(life_table * multiplier / self.death_norm[self._death_band(age), female.astype(int)], 0.95)

    def _life_table(self, age, female):
        male_log = np.interp(age, self.mort_ages, self.mort_log[0])
        female_log = np.interp(age, self.mort_ages, self.mort_log[1])
        return np.where(female, female_log, male_log)

    def care_home_log_score(self, age, has, efi):
        ch = self.profile["care_home"]
        dementia = has[:, CONDITION_ORDER.index("dementia")]
        return (ch["age_log_slope"] * (age - 85) + ch["dementia_log_rr"] * dementia + ch["efi_log_rr_per_unit"] * efi)
