"""The web gallery at ``GET /ui``, driven in Debian's headless Chromium against a real server.

Needs ``/usr/bin/chromium`` and ``/usr/bin/chromedriver`` (``.ci/run`` installs them); without
them the browser tests skip on a developer machine and FAIL in CI (``CI=true``).
"""

from __future__ import annotations

import base64
import io
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
APPLE = REPO / "examples" / "photos" / "apple.jpg"
TIMEOUT = 30


def _browser_paths() -> tuple[str, str]:
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    driver = shutil.which("chromedriver") or "/usr/bin/chromedriver"
    missing = [p for p in (chromium, driver) if not os.access(p, os.X_OK)]
    if missing:
        why = f"headless Chromium missing ({', '.join(missing)}): apt-get install chromium chromium-driver"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(why)
        pytest.skip(why)
    return chromium, driver


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    chromium, driver_path = _browser_paths()
    os.environ.setdefault("SE_OFFLINE", "true")  # never let Selenium Manager look for a driver online
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    profile = tmp_path_factory.mktemp("chromium")
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1280,1600", f"--user-data-dir={profile}", "--no-first-run"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=opts)
    driver.set_script_timeout(TIMEOUT)
    try:
        yield driver
    finally:
        driver.quit()


def _wait(driver, script: str) -> object:  # noqa: ANN001
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, TIMEOUT).until(lambda d: d.execute_script(script))


def _image_done(driver, img_id: str) -> dict:  # noqa: ANN001
    """Wait until the <img> has loaded an answer (or failed); its state, size and source URL."""
    state = _wait(driver, f"const i = document.getElementById('{img_id}');"
                          "return ['done', 'error'].includes(i.dataset.state) && i.dataset.state;")
    return driver.execute_script(
        f"const i = document.getElementById('{img_id}'); return {{state: '{state}', w: i.naturalWidth,"
        " h: i.naturalHeight, url: i.dataset.url || '', error: document.getElementById('error').textContent};")


def _img_bytes(driver, img_id: str) -> bytes:  # noqa: ANN001
    """The bytes the page shows in ``img_id`` (read back from its blob URL)."""
    data = driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        f"fetch(document.getElementById('{img_id}').src).then(r => r.arrayBuffer()).then(b => {{"
        "  let s = ''; new Uint8Array(b).forEach(c => s += String.fromCharCode(c)); done(btoa(s)); });")
    return base64.b64decode(data)


def _severe(driver) -> list[dict]:  # noqa: ANN001
    return [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"]


def _open(driver, url: str, model: str) -> None:  # noqa: ANN001
    from selenium.webdriver.common.by import By

    driver.get(f"{url}/ui")
    _wait(driver, "return document.body.dataset.ready === 'true';")
    driver.find_element(By.CSS_SELECTOR, f"#models button[data-model='{model}']").click()


def test_ui_files_are_served(serving_server):
    page = httpx.get(f"{serving_server.url}/ui")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert '<script src="/ui/app.js"' in page.text and "http" not in page.text.split("<body>")[0].replace(
        'href="/', "")  # nothing loaded from another host
    js = httpx.get(f"{serving_server.url}/ui/app.js")
    assert js.status_code == 200 and "javascript" in js.headers["content-type"] and "/models" in js.text
    missing = httpx.get(f"{serving_server.url}/ui/secret.py")
    assert missing.status_code == 404 and "secret.py" in missing.json()["error"]
    assert httpx.get(f"{serving_server.url}/ui/..%2Fservice.py").status_code == 404


def test_page_generates_without_console_errors(serving_server, browser):
    from selenium.webdriver.common.by import By

    _open(browser, serving_server.url, "dcgan")
    first = _image_done(browser, "gen-image")  # choosing a model generates once
    assert first["state"] == "done" and first["w"] > 0, first
    seed = browser.find_element(By.ID, "gen-seed")
    seed.clear()
    seed.send_keys("7")
    browser.find_element(By.ID, "gen-button").click()
    _wait(browser, "return document.getElementById('gen-image').dataset.url.includes('seed=7');")
    shown = _image_done(browser, "gen-image")
    assert shown["state"] == "done" and shown["w"] > 0 and shown["h"] > 0, shown
    want = httpx.get(f"{serving_server.url}/generate", params={"model": "dcgan", "n": 16, "seed": 7}).content
    assert _img_bytes(browser, "gen-image") == want
    assert browser.find_element(By.ID, "error").is_displayed() is False
    assert _severe(browser) == []


def test_class_choice_reaches_the_request(serving_server, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    _open(browser, serving_server.url, "cgan")
    _image_done(browser, "gen-image")
    Select(browser.find_element(By.ID, "gen-label")).select_by_visible_text("two")
    browser.find_element(By.ID, "gen-button").click()
    _wait(browser, "return document.getElementById('gen-image').dataset.url.includes('label=two');")
    shown = _image_done(browser, "gen-image")
    assert shown["state"] == "done" and shown["w"] > 0, shown
    got = _img_bytes(browser, "gen-image")
    params = {"model": "cgan", "n": 16, "seed": 1}
    assert got == httpx.get(f"{serving_server.url}/generate", params={**params, "label": 2}).content
    assert got != httpx.get(f"{serving_server.url}/generate", params=params).content
    assert _severe(browser) == []


def test_uploaded_apple_comes_back_beside_the_input(serving_server, browser):
    from selenium.webdriver.common.by import By

    _open(browser, serving_server.url, "cyclegan")
    assert browser.find_element(By.ID, "panel-generate").is_displayed() is False  # translate-only model
    browser.find_element(By.ID, "upload-input").send_keys(str(APPLE))
    out = _image_done(browser, "upload-out-image")
    assert out["state"] == "done", out
    w, h = Image.open(APPLE).size
    assert (out["w"], out["h"]) == (w, h) and "direction=apple2orange" in out["url"]
    inp = browser.execute_script("const i = document.getElementById('upload-in-image'); return i.naturalWidth;")
    assert inp == w
    a = browser.find_element(By.ID, "upload-in-image").rect
    b = browser.find_element(By.ID, "upload-out-image").rect
    assert abs(a["y"] - b["y"]) < 5 and b["x"] > a["x"] + a["width"]  # side by side
    want = httpx.post(f"{serving_server.url}/translate", params={"model": "cyclegan", "direction": "apple2orange"},
                      content=APPLE.read_bytes(), headers={"Content-Type": "image/jpeg"}).content
    got = np.asarray(Image.open(io.BytesIO(_img_bytes(browser, "upload-out-image"))))
    np.testing.assert_array_equal(got, np.asarray(Image.open(io.BytesIO(want))))
    assert _severe(browser) == []


def test_api_errors_are_shown_as_the_api_message(serving_server, browser):
    from selenium.webdriver.common.by import By

    _open(browser, serving_server.url, "stylegan")
    _image_done(browser, "gen-image")
    n = browser.find_element(By.ID, "gen-n")
    browser.execute_script("arguments[0].removeAttribute('max');", n)  # let the server judge n
    n.clear()
    n.send_keys("999")
    browser.find_element(By.ID, "gen-button").click()
    _wait(browser, "return document.getElementById('gen-image').dataset.state === 'error';")
    error = browser.find_element(By.ID, "error")
    assert error.is_displayed() and "n must be in 1..256, got 999" in error.text
    browser.find_element(By.ID, "mix-button").click()  # style mixing still works after an error
    mixed = _image_done(browser, "mix-image")
    assert mixed["state"] == "done" and mixed["w"] > 0, mixed
    browser.get_log("browser")  # the 422 is logged by Chromium as a failed resource: expected here


def test_reconstruction_upload_for_an_autoencoder(serving_server, browser):
    from selenium.webdriver.common.by import By

    _open(browser, serving_server.url, "aae")
    assert browser.find_element(By.ID, "upload-title").text == "Reconstruct an image"
    assert browser.find_element(By.ID, "upload-direction-wrap").is_displayed() is False
    browser.find_element(By.ID, "upload-input").send_keys(str(APPLE))
    out = _image_done(browser, "upload-out-image")
    assert out["state"] == "done" and (out["w"], out["h"]) == (8, 8) and "/reconstruct?" in out["url"], out
    want = httpx.post(f"{serving_server.url}/reconstruct", params={"model": "aae"}, content=APPLE.read_bytes(),
                      headers={"Content-Type": "image/jpeg"}).content
    assert _img_bytes(browser, "upload-out-image") == want
    assert _severe(browser) == []
