"""One presentation of people, dates, percentages and risks."""

from __future__ import annotations

from datetime import date, datetime, timezone

import numpy as np
import pandas as pd
import pytest

from app import presentation as show


def test_names_and_nhs_numbers_read_the_nhs_way():
    assert show.person_name("Michael", "Murphy") == "Michael Murphy"
    assert show.person_name(None, "Murphy") == "Murphy"
    assert show.person_name(pd.NA, np.nan) == "Name not recorded"
    assert show.nhs_number("9434765919") == "943 476 5919"


def test_dates_have_one_style():
    assert show.day(date(2026, 12, 2)) == "2 Dec 2026"
    assert show.day(pd.Timestamp("2026-01-09")) == "9 Jan 2026"
    assert show.day("2026-03-04") == "4 Mar 2026"
    assert show.day(None) == show.day(pd.NaT) == "Not recorded"
    assert show.moment(datetime(2026, 12, 2, 15, 5, tzinfo=timezone.utc)) == "2 Dec 2026, 3:05pm"
    assert show.moment(datetime(2026, 12, 2, 0, 30)) == "2 Dec 2026, 12:30am"


@pytest.mark.parametrize("fraction, text", [(0.9366, "94%"), (0.125, "13%"), (0.0, "0%"), (1.0, "100%"),
                                            (0.001, "less than 1%"), (0.998, "more than 99%"), (None, "Not recorded")])
def test_percentages_are_whole_and_never_round_to_all_or_nothing(fraction, text):
    assert show.percent(fraction) == text


def test_risk_and_rank_in_words_never_say_100():
    assert show.risk_in_words(0.0937) == "About 9 in 100 people like this have an emergency admission within a year"
    assert show.risk_in_words(0.004).startswith("Fewer than 1 in 100")
    assert show.rank_in_words(99.99) == "Higher than 99 in every 100 people registered"
    assert show.rank_in_words(93.7) == "Higher than 93 in every 100 people registered"
    assert show.rank_in_words(0.2) == "Among the lowest of people registered"


def test_colleagues_by_name_and_system_actors_in_words():
    names = {"navigator1": "Sam Patel"}
    assert show.user_name(names, "navigator1") == "Sam Patel"
    assert show.user_name(names, "system:load") == "Proactive Care (automatic)"
    assert show.user_name(names, None) == "Unknown user"
    assert show.count(12345) == "12,345" and show.yes_no(False) == "No"
