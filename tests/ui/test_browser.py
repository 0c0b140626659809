"""The pages in a real browser: Debian's Chromium driven by Playwright against a real ``capsule serve``.

Every page loads without a console error, every link between pages leads somewhere, charts are drawn,
the try-it form answers in place (and, without JavaScript, on the answer page), and axe-core finds no
serious or critical accessibility violation. With ``MODELCAPSULE_SCREENSHOTS=DIR`` set, each page is
also saved as a PNG (how docs/img/ is made).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urljoin, urlparse

import pytest

sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (the dev extra)")

CHROMIUM = shutil.which("chromium")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed: apt-get install -y chromium"),
]

AXE = Path(__file__).parent / "data" / "axe.min.js"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]

PAGES = {
    "models": "/",
    "model": "/models/iris",
    "card-classifier": "/models/iris/versions/2",
    "card-regressor": "/models/diabetes/versions/1",
    "card-old-capsule": "/models/old/versions/1",
    "compare": "/models/iris/compare?a=1&b=2",
}


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


class Visit:
    """A page opened with every console error, uncaught exception and failed request recorded."""

    def __init__(self, browser: object, url: str, *, javascript: bool = True) -> None:
        self.context = browser.new_context(viewport={"width": 1280, "height": 900},  # type: ignore[attr-defined]
                                           java_script_enabled=javascript)
        self.page = self.context.new_page()
        self.problems: list[str] = []
        self.page.on("console", lambda m: self.problems.append(f"console {m.type}: {m.text}")
                     if m.type in ("error", "warning") else None)
        self.page.on("pageerror", lambda e: self.problems.append(f"uncaught: {e}"))
        self.page.on("requestfailed", lambda r: self.problems.append(f"request failed: {r.url}"))
        self.page.on("response", lambda r: self.problems.append(f"HTTP {r.status}: {r.url}")
                     if r.status >= 400 else None)
        self.response = self.page.goto(url)
        self.page.wait_for_load_state("networkidle")

    def close(self) -> None:
        self.context.close()


@pytest.mark.parametrize("name", list(PAGES))
def test_page_loads_cleanly_and_passes_axe(browser, served, name):
    visit = Visit(browser, served + PAGES[name])
    try:
        assert visit.response is not None and visit.response.status == 200
        assert visit.problems == []
        visit.page.add_script_tag(path=str(AXE))
        result = visit.page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
        serious = [f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:3]}"
                   for v in result["violations"] if v["impact"] in ("serious", "critical")]
        assert serious == []
        if shots := os.environ.get("MODELCAPSULE_SCREENSHOTS"):
            Path(shots).mkdir(parents=True, exist_ok=True)
            visit.page.screenshot(path=str(Path(shots) / f"{name}.png"), full_page=True)
    finally:
        visit.close()


def test_every_link_between_pages_leads_to_a_page(browser, served):
    seen: set[str] = set()
    queue = ["/"]
    visit = Visit(browser, served + "/")
    try:
        while queue and len(seen) < 40:
            path = queue.pop(0)
            if path in seen:
                continue
            seen.add(path)
            response = visit.page.goto(served + path)
            assert response is not None and response.status == 200, f"{path} answered {response and response.status}"
            if response.headers.get("content-type", "").startswith("application/json"):
                continue
            for href in visit.page.eval_on_selector_all("a[href]", "els => els.map(e => e.getAttribute('href'))"):
                target = urlparse(urljoin(served + path, href))
                if target.netloc == urlparse(served).netloc and target.path not in ("/metrics",):
                    queue.append(target.path + (f"?{target.query}" if target.query else ""))
        assert {"/", "/models/iris", "/models/iris/versions/1", "/models/iris/versions/2", "/models.json",
                "/models/iris/compare?a=1&b=2", "/models/iris/versions/2.json"} <= seen
        assert [p for p in visit.problems if "HTTP" in p or "uncaught" in p] == []
    finally:
        visit.close()


def test_charts_are_drawn_with_their_marks(browser, served):
    for path, expected in (("/models/iris/versions/2", 4), ("/models/diabetes/versions/1", 2)):
        visit = Visit(browser, served + path)
        try:
            visit.page.wait_for_function(f"document.querySelectorAll('.vega.drawn svg').length === {expected}",
                                         timeout=15_000)
            marks = visit.page.eval_on_selector_all(
                ".vega.drawn svg", "svgs => svgs.map(s => s.querySelectorAll('path, rect, circle').length)")
            assert len(marks) == expected and all(n > 5 for n in marks)
            assert visit.page.locator("figure.chart details table").count() == expected  # the numbers, too
            assert visit.problems == []
        finally:
            visit.close()


def test_try_it_form_answers_in_place(browser, served):
    visit = Visit(browser, served + "/models/iris/versions/2")
    try:
        page = visit.page
        page.fill("#rows", "[[6.7, 3.0, 5.2, 2.3], [5.1, 3.5, 1.4, 0.2]]")
        with page.expect_response(lambda r: r.url.endswith("/predict") and r.request.method == "POST") as answer:
            page.click("form.try button")
        assert answer.value.status == 200
        page.wait_for_function("document.querySelector('form.try output').textContent.includes('predict')")
        text = page.text_content("form.try output")
        assert text.splitlines()[0] == "predict: [2,0]" and "predict_proba: [[" in text
        assert page.url == served + "/models/iris/versions/2"  # no navigation: the answer came in place
        page.fill("#rows", "[[1, 2]]")
        page.click("form.try button")
        page.wait_for_function("document.querySelector('form.try output').classList.contains('problem')")
        assert "expected rows of 4 values" in page.text_content("form.try output")
    finally:
        visit.close()


def test_pages_work_without_javascript(browser, served):
    visit = Visit(browser, served + "/models/iris/versions/2", javascript=False)
    try:
        page = visit.page
        assert page.locator(".vega svg").count() == 0
        assert page.locator("figure.chart details table").count() == 4  # the numbers stand in for the charts
        page.fill("#rows", "[[6.7, 3.0, 5.2, 2.3]]")
        with page.expect_navigation():
            page.click("form.try button")
        assert page.text_content("form.try output").splitlines()[0] == "predict: [2]"
        page.goto(served + "/?q=dia")
        assert page.locator("table.models tbody tr").count() == 1
    finally:
        visit.close()
