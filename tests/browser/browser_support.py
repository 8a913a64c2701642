"""What every browser journey does: sign in and out, wait for Streamlit to settle, pick an option,
take a screenshot into test-artifacts/."""

from __future__ import annotations

from pathlib import Path

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


class Journey:
    def __init__(self, page, url: str, prefix: str = "journey"):
        self.page, self.url, self.step, self.prefix = page, url, 0, prefix
        ARTIFACTS.mkdir(exist_ok=True)

    def shot(self, name: str) -> None:
        self.step += 1
        self.page.wait_for_timeout(500)  # let the last rerun paint, then wait for its chart images
        self.page.wait_for_function(
            "Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)", timeout=15_000
        )
        self.page.screenshot(path=str(ARTIFACTS / f"{self.prefix}_{self.step:02d}_{name}.png"), full_page=True)

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


