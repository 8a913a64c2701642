"""The whole caseload journey in a real browser (Playwright driving Debian's Chromium).

Once per test session a demo is built through the command line exactly as ``make run`` does
(cohort -> train -> score -> db upgrade -> load; 50,000 people unless
PROACTIVE_CARE_BROWSER_PATIENTS says otherwise), the app is served on a free port, and:

1. a commissioner notes the area's "Top 2% risk" coverage figure and signs out;
2. a practice user opens the high-risk list, opens a flagged person, names a lead professional,
   agrees a care plan and signs out;
3. the commissioner sees the coverage figure move;
4. a user of another practice fails to open that person.

Screenshots of each step go to test-artifacts/. To iterate quickly, set
PROACTIVE_CARE_BROWSER_DEMO_DIR to a folder already holding demo.db and model/ (it is copied).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

pytestmark = [pytest.mark.browser, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
CLI = [sys.executable, "-m", "app.cli"]
PRE_COVERED = 12  # disclosed as 10; one more plan makes 13, disclosed as 15: the figure moves

if not Path(CHROMIUM).exists():
    pytest.skip(f"{CHROMIUM} is missing (make test installs Debian's chromium)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api")


def run_cli(*args: str, env: dict) -> None:
    started = time.monotonic()
    subprocess.run([*CLI, *args], check=True, env=env, cwd=REPO)
    print(f"  proactive-care {args[0]}: {time.monotonic() - started:.0f} s", file=sys.stderr)


@pytest.fixture(scope="session")
def demo(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("browser-demo")
    env = {**os.environ, "PROACTIVE_CARE_DATABASE_URL": f"sqlite:///{folder / 'demo.db'}",
           "PROACTIVE_CARE_MODE": "demo", "PROACTIVE_CARE_MODEL_DIR": str(folder / "model")}
    reuse = os.environ.get("PROACTIVE_CARE_BROWSER_DEMO_DIR")
    started = time.monotonic()
    if reuse:
        shutil.copyfile(Path(reuse) / "demo.db", folder / "demo.db")
        shutil.copytree(Path(reuse) / "model", folder / "model")
    else:
        patients = os.environ.get("PROACTIVE_CARE_BROWSER_PATIENTS", "50000")
        run_cli("cohort", "--patients", patients, "--seed", "42", "--out", str(folder / "records"), env=env)
        run_cli("train", "--records", str(folder / "records"), "--index-date", "2024-01-01",
                "--out", str(folder / "model"), env=env)
        run_cli("score", "--records", str(folder / "records"), "--model", str(folder / "model"),
                "--index-date", "2026-01-01", "--out", str(folder / "scores.parquet"), env=env)
        run_cli("db", "upgrade", env=env)
        run_cli("load", "--records", str(folder / "records"), "--scores", str(folder / "scores.parquet"),
                "--model", str(folder / "model"), env=env)
    print(f"  demo ready in {time.monotonic() - started:.0f} s", file=sys.stderr)
    return {"folder": folder, "env": env, "url": env["PROACTIVE_CARE_DATABASE_URL"]}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def journey_people(demo) -> dict:
    """The practice user, their person, a user of another practice, and 12 plans already agreed."""
    from app.db import get_engine, session_scope
    from app.services import careplans
    from app.services.users import demo_users, get_user
    from app.store import CarePlan, Practice, Score, ScoreRun

    engine = get_engine(demo["url"])
    with session_scope(engine) as session:
        practices = session.execute(select(Practice.practice_code, Practice.pcn_code)).all()
        accounts = {u.username: u for u in demo_users([tuple(p) for p in practices])}
        practice_user = get_user(session, "practice1")
        run = session.scalar(select(ScoreRun).where(ScoreRun.is_current))
        people = list(session.scalars(
            select(Score.nhs_number)
            .outerjoin(CarePlan, CarePlan.nhs_number == Score.nhs_number)
            .where(Score.run_id == run.id, run.has_flag("top_2pct"), CarePlan.nhs_number.is_(None),
                   Score.practice_code.in_(sorted(practice_user.practice_codes)))
            .order_by(Score.nhs_number).limit(PRE_COVERED + 1)
        ))
    assert len(people) == PRE_COVERED + 1, "the demo has too few top-2% people at practice1's practices"
    review = date.today() + timedelta(days=120)
    with session_scope(engine, write=True) as session:
        for nhs in people[:PRE_COVERED]:
            careplans.assign_lead_professional(session, practice_user, nhs, "Dr Demo", "GP", 0)
            careplans.save_care_plan(session, practice_user, nhs, 0, status="agreed",
                                     goals=["Stay well at home"], next_review=review)
    other = next(u for u in accounts.values() if u.role == "practice"
                 and not set(u.practice_codes) & practice_user.practice_codes)
    engine.dispose()
    return {"person": people[-1], "practice": accounts["practice1"], "other": other,
            "commissioner": accounts["commissioner"]}


@pytest.fixture(scope="session")
def app_url(demo, journey_people):
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(REPO / "streamlit_app.py"),
         "--server.port", str(port), "--server.address", "127.0.0.1", "--server.headless", "true",
         "--browser.gatherUsageStats", "false"],
        cwd=REPO, env=demo["env"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                    if response.read().strip() == b"ok":
                        break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the app did not start: {server.stderr.read().decode()[-2000:]}")
                time.sleep(0.5)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=20)


@pytest.fixture(scope="session")
def browser():
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


class Journey:
    def __init__(self, page, url: str):
        self.page, self.url, self.step = page, url, 0
        ARTIFACTS.mkdir(exist_ok=True)

    def shot(self, name: str) -> None:
        self.step += 1
        self.page.wait_for_timeout(500)  # let the last rerun paint, then wait for its chart images
        self.page.wait_for_function(
            "Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)", timeout=15_000
        )
        self.page.screenshot(path=str(ARTIFACTS / f"journey_{self.step:02d}_{name}.png"), full_page=True)

    def settle(self) -> None:
        """Wait until Streamlit has finished running the script."""
        self.page.wait_for_timeout(200)
        self.page.locator('[data-testid="stStatusWidget"]').wait_for(state="detached", timeout=30_000)

    def sign_in(self, account) -> None:
        self.page.goto(self.url)
        self.page.get_by_role("textbox", name="Username").fill(account.username)
        self.page.get_by_role("textbox", name="Password").fill(account.password)
        self.page.get_by_role("button", name="Sign in").click()
        self.page.get_by_text(account.display_name).wait_for(timeout=30_000)
        self.settle()

    def sign_out(self) -> None:
        self.page.get_by_role("button", name="Sign out").click()
        self.page.get_by_role("button", name="Sign in").wait_for(timeout=30_000)

    def choose(self, label: str, option: str) -> None:
        """Pick an option of a Streamlit selectbox by typing part of it."""
        box = self.page.get_by_label(label, exact=False).first
        box.click()
        box.fill(option)
        self.page.get_by_role("option", name=option, exact=False).first.click()
        self.settle()

    def area_top_2pct(self) -> str:
        self.page.get_by_role("link", name="Care-plan coverage").click()
        self.settle()
        self.page.get_by_text("Whole area", exact=True).click()
        self.settle()
        metric = self.page.locator('[data-testid="stMetric"]').filter(has_text="Top 2% risk")
        return metric.locator('[data-testid="stMetricValue"]').inner_text(timeout=30_000).strip()


def test_practice_to_agreed_plan_moves_coverage_and_other_practice_is_refused(browser, app_url, journey_people):
    person = journey_people["person"]
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    journey = Journey(context.new_page(), app_url)
    try:
        walk(journey, journey_people)
    except Exception:
        journey.shot("failed_here")
        raise
    finally:
        context.close()


def walk(journey: Journey, journey_people: dict) -> None:
    person = journey_people["person"]

    journey.sign_in(journey_people["commissioner"])
    before = journey.area_top_2pct()
    journey.shot("commissioner_coverage_before")
    journey.sign_out()

    journey.sign_in(journey_people["practice"])
    journey.page.get_by_role("heading", name="High-risk list").wait_for()
    journey.shot("practice_high_risk_list")
    journey.choose("Open a person from this list", person)
    journey.page.get_by_role("button", name="Open patient").click()
    journey.page.get_by_text("A score is not a diagnosis").first.wait_for(timeout=30_000)
    journey.page.get_by_role("heading", name="History").wait_for(timeout=30_000)  # the whole page drawn
    journey.settle()
    journey.shot("patient_page")

    journey.page.get_by_label("Name", exact=True).fill("Dr Asha Rao")
    journey.page.get_by_role("button", name="Save lead professional").click()
    journey.page.get_by_text("Now: Dr Asha Rao (GP)").wait_for(timeout=30_000)
    journey.settle()
    journey.choose("Status", "Agreed")
    journey.page.get_by_label("Goals (one per line)").fill("Stay well at home\nFewer falls")
    journey.page.get_by_text("Consent to share this plan").click()
    journey.page.get_by_role("button", name="Save care plan").click()
    journey.page.get_by_role("heading", name="Care plan: Agreed").wait_for(timeout=30_000)
    journey.settle()
    journey.shot("care_plan_agreed")
    journey.sign_out()

    journey.sign_in(journey_people["commissioner"])
    after = journey.area_top_2pct()
    journey.shot("commissioner_coverage_after")
    journey.sign_out()
    assert before != after, f"the area's top-2% coverage stayed at {before}"
    assert float(after.rstrip("%")) > float(before.rstrip("%"))

    journey.sign_in(journey_people["other"])
    journey.page.get_by_label("Open a person by NHS number").fill(person)
    journey.page.get_by_role("button", name="Open this person").click()
    refusal = journey.page.get_by_text("not registered at your practices")
    refusal.wait_for(timeout=30_000)
    journey.shot("other_practice_refused")
    assert journey.page.get_by_role("heading", name="Lead professional").count() == 0
