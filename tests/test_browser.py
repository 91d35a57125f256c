"""The page in a real browser, as a visitor meets it: nothing before a drawing, a face that
appears while drawing with the mouse (no button), examples shown with their faces, a bad
upload explained at once.

Uses Debian's chromium through Playwright (Playwright's own browser download is not used).
Skips, with the reason, when chromium or Playwright is missing; CI installs both.
Screenshots go to pytest's tmp_path (printed with -s).
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

import app

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
# Software-rendered canvas on a busy 2-core CI box: one mouse move can take a second.
GENERATION_TIMEOUT_MS = 180_000


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
    page.set_default_timeout(GENERATION_TIMEOUT_MS)
    page.goto(app_url)
    page.wait_for_selector("#sketchpad canvas", timeout=60_000)
    try:
        yield page
    finally:
        page.close()


def shown_image(page, selector: str) -> str | None:
    return page.evaluate("(selector) => document.querySelector(selector + ' img')?.src ?? null", selector)


def wait_for_image(page, selector: str) -> Image.Image:
    """Wait until ``selector`` shows a loaded image; return its pixels as served."""
    page.wait_for_function(
        """(selector) => {
            const image = document.querySelector(selector + ' img');
            return image && image.src && image.complete && image.naturalWidth > 0;
        }""",
        arg=selector,
    )
    response = page.request.get(shown_image(page, selector))
    assert response.ok, f"the image in {selector} could not be fetched: HTTP {response.status}"
    return Image.open(io.BytesIO(response.body())).convert("RGB")


def stroke(page, points: list[tuple[float, float]]) -> None:
    page.mouse.move(*points[0])
    page.mouse.down()
    for point in points[1:]:
        page.mouse.move(*point)  # one event each: every move waits for a (software GL) frame
    page.mouse.up()


def draw_a_face(page) -> None:
    """Head, eyes, nose and mouth in ~20 mouse moves, relative to the canvas centre."""
    page.get_by_role("button", name="Brush", exact=True).click()
    box = page.locator("#sketchpad canvas").first.bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    corners = 10
    stroke(page, [(cx + 150 * math.cos(k / corners * 2 * math.pi), cy + 200 * math.sin(k / corners * 2 * math.pi)) for k in range(corners + 1)])
    for side in (-1, 1):
        stroke(page, [(cx + side * 70, cy - 30), (cx + side * 30, cy - 30)])
    stroke(page, [(cx, cy - 15), (cx - 12, cy + 40), (cx + 10, cy + 45)])
    stroke(page, [(cx - 50, cy + 90), (cx, cy + 108), (cx + 50, cy + 90)])


def assert_not_blank(image: Image.Image) -> None:
    pixels = np.asarray(image, dtype=np.float32)
    assert pixels.std() > 10, f"the output is nearly uniform (std {pixels.std():.1f})"
    assert 20 < pixels.mean() < 235, f"the output is nearly all black or white (mean {pixels.mean():.0f})"


def assert_no_error_toast(page) -> None:
    toasts = page.locator(".toast-body.error")
    assert toasts.count() == 0, f"the page shows an error: {toasts.first.inner_text()}"


def selected_tab(page) -> str:
    return page.locator("[role=tab][aria-selected=true]").inner_text().strip()


def test_the_page_shows_no_face_before_there_is_a_drawing(page, tmp_path):
    page.wait_for_load_state("networkidle")  # whatever the page loads on start has arrived
    page.screenshot(path=tmp_path / "loaded.png")
    print(f"\nscreenshot: {tmp_path / 'loaded.png'}")
    assert shown_image(page, "#drawing-face") is None
    assert page.inner_text("#drawing-status").strip() == app.DRAW_PROMPT
    page.get_by_role("tab", name="Upload").click()
    assert shown_image(page, "#upload-face") is None
    assert shown_image(page, "#upload") is None
    assert page.inner_text("#upload-status").strip() == app.UPLOAD_PROMPT


def test_a_few_strokes_make_a_face_appear_without_a_click(page, tmp_path):
    draw_a_face(page)  # no button is pressed anywhere in this test
    face = wait_for_image(page, "#drawing-face")
    page.wait_for_function("() => document.querySelector('#drawing-status').innerText.includes('Live preview')")
    page.screenshot(path=tmp_path / "drawn.png")
    print(f"\nscreenshot: {tmp_path / 'drawn.png'}")
    assert_no_error_toast(page)
    assert_not_blank(face)
    assert face.size[0] / face.size[1] == pytest.approx(512 / 640, abs=0.02)  # the canvas's 4:5 frame


def test_clicking_an_example_shows_that_sketch_and_its_face(page, served_pipeline, tmp_path):
    example = REPO_ROOT / "examples" / "03_glasses_spiky.png"
    page.locator("button.gallery-item", has=page.locator(f"img[src$='/{example.name}']")).click()
    page.wait_for_function("() => document.querySelector('[role=tab][aria-selected=true]')?.innerText.trim() === 'Upload'")
    sketch = wait_for_image(page, "#upload")
    face = wait_for_image(page, "#upload-face")
    page.screenshot(path=tmp_path / "example.png")
    print(f"\nscreenshot: {tmp_path / 'example.png'}")
    assert selected_tab(page) == "Upload"
    assert_no_error_toast(page)
    with Image.open(example) as original:
        assert np.array_equal(np.asarray(sketch), np.asarray(original.convert("RGB")))
    assert example.stem in page.inner_text("#upload-status")
    # The face next to it is what the served model makes of that sketch.
    expected = np.asarray(served_pipeline(str(example)), dtype=np.int16)
    got = np.asarray(face, dtype=np.int16)
    assert got.shape == expected.shape
    assert np.abs(got - expected).max() <= 2


def test_a_file_that_is_not_an_image_is_explained_as_soon_as_it_is_uploaded(page, tmp_path):
    notes = tmp_path / "notes.png"
    notes.write_bytes(b"Shopping list: eggs, milk, pencils.\n" * 30)
    page.get_by_role("tab", name="Upload").click()
    page.locator("#upload input[type=file]").set_input_files(str(notes))
    page.wait_for_function("() => document.querySelector('#upload-status').innerText.includes('not an image we can read')")
    page.screenshot(path=tmp_path / "bad_upload.png")
    print(f"\nscreenshot: {tmp_path / 'bad_upload.png'}")
    assert page.inner_text("#upload-status").strip() == "⚠️ The file is not an image we can read (use PNG, JPEG, WebP, GIF or BMP)."
    assert shown_image(page, "#upload-face") is None
    page.wait_for_function("() => !document.querySelector('#upload img')")  # no broken-image preview
    assert_no_error_toast(page)
