"""The served app on loopback: a bounded load test and a real-browser test (headless Chromium)."""

import concurrent.futures as cf
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

from tests.test_bundle_predict import make_bundle

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    path, _ = make_bundle(tmp_path_factory.mktemp("bundle"))
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "learnerprobe.cli", "serve", "--bundle", str(path), "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            if httpx.get(url + "/api/bundles", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.2)
    else:
        proc.kill()
        pytest.fail("server did not start: " + (proc.stderr.read() if proc.stderr else ""))
    yield url, proc
    proc.terminate()
    proc.wait(timeout=10)


def test_load_200_requests_8_clients(server):
    url, proc = server
    texts = [("Ich wohne seit zwei Jahren in der Stadt", "de"), ("Io abito a Milano con mia sorella", "it")]

    def one(i):
        text, want = texts[i % 2]
        with httpx.Client(timeout=30) as c:
            r = c.post(url + "/api/predict", json={"text": f"{text} {i}"})
        return r.status_code, r.json()["l1"]["label"], want

    rss = psutil.Process(proc.pid)
    with cf.ThreadPoolExecutor(8) as ex:  # warm-up round
        list(ex.map(one, range(40)))
    before = rss.memory_info().rss
    with cf.ThreadPoolExecutor(8) as ex:
        results = list(ex.map(one, range(200)))
    after = rss.memory_info().rss
    assert all(code == 200 for code, _, _ in results)
    assert all(got == want for _, got, want in results)
    assert after - before < 50 * 2**20, f"server RSS grew by {(after - before) / 2**20:.1f} MiB"


def _chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None and os.geteuid() == 0:  # the test setup installs it where missing
        subprocess.run(["apt-get", "update", "-qq"], check=False)
        subprocess.run(["apt-get", "install", "-y", "-qq", "chromium"], check=False,
                       env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
        exe = shutil.which("chromium")
    if exe is None:
        pytest.fail("chromium is not installed and could not be installed (apt-get install chromium)")
    return exe


def test_browser_page(server):
    from playwright.sync_api import sync_playwright

    url, _ = server
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=_chromium(),
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"],
        )
        page = browser.new_page()
        page.goto(url + "/")
        page.fill("#text", "Ich wohne seit zwei Jahren in einer kleinen Wohnung in der Stadt.")
        page.click("#submit")
        page.wait_for_selector("#l1-chart .bar-row", timeout=20_000)
        bars = page.locator("#l1-chart .bar-row").all_inner_texts()
        assert bars and bars[0].startswith("de")
        assert "ngram" in page.inner_text("#cards")
        page.screenshot(path=str(ARTIFACTS / "serve-page.png"), full_page=True)
        browser.close()
    assert (ARTIFACTS / "serve-page.png").stat().st_size > 1000
