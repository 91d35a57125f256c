import time
from tests.test_browser import *  # noqa
def test_timing(page, tmp_path):
    t = time.time(); before = output_src(page); print("\nsrc", time.time() - t)
    t = time.time(); page.get_by_role("button", name="Brush", exact=True).click(); print("brush", time.time() - t)
    t = time.time(); draw_a_face(page); print("draw", time.time() - t)
    t = time.time(); page.screenshot(path=tmp_path / "drawn.png"); print("shot", time.time() - t)
    t = time.time(); page.click("#generate-drawing"); print("click", time.time() - t)
    t = time.time(); face = wait_for_new_output(page, before); print("wait", time.time() - t)
