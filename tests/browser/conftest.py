"""Browser tests (Playwright driving Debian's Chromium) share one demo and one served app.

Once per test session a demo is built through the command line exactly as ``make run`` does
(cohort -> train -> score -> db upgrade -> load; 50,000 people unless
PROACTIVE_CARE_BROWSER_PATIENTS says otherwise) and the app is served on a free port. Each test
file walks its own journey with ``Journey`` and keeps screenshots in test-artifacts/. To iterate
quickly, set PROACTIVE_CARE_BROWSER_DEMO_DIR to a folder already holding demo.db and model/ (it is
copied).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
CLI = [sys.executable, "-m", "app.cli"]

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
def app_url(demo):
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
