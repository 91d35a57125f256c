"""The page in a real browser: draw with the mouse, press Generate, get a face; click an example.

Uses Debian's chromium through Playwright (Playwright's own browser download is not used).
Skips, with the reason, when chromium or Playwright is missing; CI installs both.
"""

from __future__ import annotations

import io
import math
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO_ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = os.environ.get("SKETCH2FACE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
]
GENERATION_TIMEOUT_MS = 120_000  # a busy 2-core CI box


@pytest.fixture(scope="module")
def browser():
    if not (Path(CHROMIUM).is_file() or shutil.which(CHROMIUM)):
        pytest.skip(f"chromium not found at {CHROMIUM} (apt-get install -y chromium, or set SKETCH2FACE_CHROMIUM)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright (python) is not installed")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(browser, app_url):
    page = browser.new_page(viewport={"width": 1280, "height": 1400})
    page.goto(app_url)
    page.wait_for_selector("#sketchpad canvas", timeout=60_000)
    try:
        yield page
    finally:
        page.close()


def output_src(page) -> str | None:
    return page.evaluate("() => document.querySelector('#output img')?.src ?? null")


def wait_for_new_output(page, previous: str | None) -> Image.Image:
    """Wait until the output shows an image other than ``previous``; return its pixels."""
    page.wait_for_function(
        """(previous) => {
            const image = document.querySelector('#output img');
            return image && image.src && image.src !== previous && image.complete && image.naturalWidth > 0;
        }""",
        arg=previous,
        timeout=GENERATION_TIMEOUT_MS,
    )
    response = page.request.get(output_src(page))
    assert response.ok, f"the output image could not be fetched: HTTP {response.status}"
    return Image.open(io.BytesIO(response.body())).convert("RGB")


def stroke(page, points: list[tuple[float, float]]) -> None:
    page.mouse.move(*points[0])
    page.mouse.down()
    for point in points[1:]:
        page.mouse.move(*point)  # one event each: every move waits for a (software GL) frame
    page.mouse.up()


def loop(cx: float, cy: float, rx: float, ry: float, corners: int) -> list[tuple[float, float]]:
    return [(cx + rx * math.cos(step / corners * 2 * math.pi), cy + ry * math.sin(step / corners * 2 * math.pi)) for step in range(corners + 1)]


def draw_a_face(page) -> None:
    """Head, brows, eyes, nose and mouth in ~30 mouse moves, relative to the canvas centre."""
    page.get_by_role("button", name="Brush", exact=True).click()
    box = page.locator("#sketchpad canvas").first.bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    stroke(page, loop(cx, cy, 150, 200, 14))
    for side in (-1, 1):
        stroke(page, [(cx + side * 75, cy - 55), (cx + side * 25, cy - 60)])
        stroke(page, loop(cx + side * 50, cy - 30, 18, 8, 6))
    stroke(page, [(cx, cy - 15), (cx - 12, cy + 40), (cx + 10, cy + 45)])
    stroke(page, [(cx - 50, cy + 90), (cx, cy + 108), (cx + 50, cy + 90)])


def assert_not_blank(image: Image.Image) -> None:
    pixels = np.asarray(image, dtype=np.float32)
    assert pixels.std() > 10, f"the output is nearly uniform (std {pixels.std():.1f})"
    assert 20 < pixels.mean() < 235, f"the output is nearly all black or white (mean {pixels.mean():.0f})"


def assert_no_error_toast(page) -> None:
    toasts = page.locator(".toast-body.error")
    assert toasts.count() == 0, f"the page shows an error: {toasts.first.inner_text()}"


def test_drawing_with_the_mouse_and_generating_shows_a_face(page, tmp_path):
    before = output_src(page)
    draw_a_face(page)
    page.screenshot(path=tmp_path / "drawn.png")
    page.click("#generate-drawing")
    face = wait_for_new_output(page, before)
    page.screenshot(path=tmp_path / "generated.png")
    print(f"\nscreenshots: {tmp_path / 'drawn.png'}, {tmp_path / 'generated.png'}")
    assert_no_error_toast(page)
    assert_not_blank(face)
    # The output keeps the canvas's portrait 4:5 frame (512x640).
    assert face.size[0] / face.size[1] == pytest.approx(512 / 640, abs=0.02)


def test_clicking_an_example_shows_its_face(page, served_pipeline, tmp_path):
    example = REPO_ROOT / "examples" / "03_glasses_spiky.png"
    before = output_src(page)
    page.locator("button.gallery-item", has=page.locator(f"img[src$='/{example.name}']")).click()
    face = wait_for_new_output(page, before)
    page.screenshot(path=tmp_path / "example.png")
    assert_no_error_toast(page)
    assert_not_blank(face)
    # The cached example output is what the served model makes of that sketch.
    expected = np.asarray(served_pipeline(str(example)), dtype=np.int16)
    got = np.asarray(face, dtype=np.int16)
    assert got.shape == expected.shape
    assert np.abs(got - expected).max() <= 2
