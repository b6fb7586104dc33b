"""The restoration page in a real browser: headless Chromium (Debian's
``chromium``), driven by Playwright through ``executable_path`` (no browser
download), against a server the tests start on a loopback port.

Run locally: ``apt-get install chromium``, ``pip install -r
requirements-serve.txt playwright``, then ``python -m pytest tests/serving``.
Without a browser these tests are skipped with the reason; with
``VF_JAX_CI=1`` (CI) they fail instead. ``VF_JAX_SCREENSHOT=FILE`` writes the
README's picture of the page."""

import os
import subprocess
import sys
import urllib.parse

import numpy as np
import pytest
import soundfile as sf

from vf_jax.serving import uploads

from page_testing import chromium, free_port, need

pytestmark = pytest.mark.multiprocess
TIMEOUT_MS = 240_000


@pytest.fixture(scope="module")
def server(small_weights_dir):
    """The page (small weights) served from this process: its URL."""
    need("gradio", "the page's requirements, requirements-serve.txt")
    from vf_jax.serving import page
    gr_page, url, workspace = page.launch(small_weights_dir, port=free_port(), block=False,
                                          quiet=True)
    yield url
    gr_page.close()
    workspace.close()


@pytest.fixture(scope="module")
def browser(server):
    need("playwright", "the browser tests' driver: pip install playwright")
    from playwright.sync_api import sync_playwright

    # Chromium's fake microphone (a tone) stands in for a real one, allowed
    # without asking. As root Chromium runs only without its sandbox.
    args = ["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"]
    args += ["--no-sandbox"] if os.geteuid() == 0 else []
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium(), args=args)
        yield b
        b.close()


class Page:
    """One browser tab on the page, recording its console and requests."""

    def __init__(self, browser, url):
        self.tab = browser.new_page(accept_downloads=True)
        self.tab.set_default_timeout(TIMEOUT_MS)      # two busy cores in CI
        self.console, self.errors, self.hosts = [], [], set()
        self.tab.on("console", lambda m: self.console.append((m.type, m.text)))
        self.tab.on("pageerror", lambda e: self.errors.append(str(e)))
        self.tab.on("request", lambda r: self.hosts.add(urllib.parse.urlsplit(r.url).netloc))
        self.tab.goto(url)
        self.tab.wait_for_selector("#restore", timeout=TIMEOUT_MS)

    def upload(self, path):
        """Choose ``path`` as a user does: click the upload area, pick the file
        in the file chooser (which opens only once the page is live)."""
        with self.tab.expect_file_chooser() as chooser:
            self.tab.get_by_role("button", name="Click to upload or drop files").click()
        chooser.value.set_files(path)
        self.shows("#upload", os.path.basename(path))

    def shows(self, selector, text):
        """Wait until the visible text of ``selector`` includes ``text``
        (white space aside: a file's name and extension may wrap apart)."""
        self.tab.wait_for_function(
            "([selector, text]) => (document.querySelector(selector)?.innerText ?? '')"
            ".replace(/\\s+/g, '').includes(text.replace(/\\s+/g, ''))", arg=[selector, text])

    def settings(self, mode_label, strength, loudness_label):
        self.tab.get_by_label(mode_label).check()
        number = self.tab.locator("#strength input[type=number]")
        number.fill(str(strength))
        number.press("Enter")
        self.tab.get_by_label(loudness_label).check()

    def restore_and_download(self, into):
        self.tab.locator("#restore").click()
        return self.download(into)

    def download(self, into):
        """Wait for the result's link, click it, save what the browser downloads."""
        link = self.tab.locator("#download a").first
        link.wait_for(timeout=TIMEOUT_MS)
        with self.tab.expect_download(timeout=TIMEOUT_MS) as download:
            link.click()
        download.value.save_as(into)
        return into


def cli(weights, src, dst, *extra):
    subprocess.run([sys.executable, "-m", "vf_jax", "restore", "-i", src, "-o", dst,
                    "--weights", weights, "--quiet", *extra], check=True)
    return dst


def assert_same_samples(got, expected):
    """Two WAV files hold the same 16-bit samples at the same rate."""
    assert sf.info(got).samplerate == sf.info(expected).samplerate == 44100
    np.testing.assert_array_equal(sf.read(got, dtype="int16")[0],
                                  sf.read(expected, dtype="int16")[0])


def test_the_page_loads_without_console_errors_or_outside_requests(browser, server):
    page = Page(browser, server)
    page.tab.wait_for_load_state("networkidle")
    assert page.tab.locator("#restore").inner_text().strip() == "Restore"
    assert not page.errors
    assert not [m for m in page.console if m[0] == "error"], page.console
    assert page.hosts == {urllib.parse.urlsplit(server).netloc}, page.hosts
    page.tab.close()


def test_upload_restore_download_equals_the_restore_command(browser, server,
                                                            small_weights_dir,
                                                            speech_files, tmp_path):
    page = Page(browser, server)
    page.upload(speech_files["short"])
    page.settings("1: remove content above the 95% energy bin first", 0.8,
                  "input (the input's loudness, ITU-R BS.1770)")
    got = page.restore_and_download(str(tmp_path / "downloaded.wav"))
    expected = cli(small_weights_dir, speech_files["short"], str(tmp_path / "cli.wav"),
                   "--mode", "1", "--strength", "0.8", "--loudness", "input")
    assert sf.info(got).format == sf.info(expected).format == "WAV"
    assert sf.info(got).subtype == "PCM_16"
    assert_same_samples(got, expected)
    page.tab.wait_for_selector("#restored audio, #restored [data-testid=waveform-controls]",
                               state="attached", timeout=TIMEOUT_MS)
    assert "short.wav" in page.tab.locator("#report").inner_text()
    page.tab.wait_for_selector("#figure img", timeout=TIMEOUT_MS)
    if os.environ.get("VF_JAX_SCREENSHOT"):
        page.tab.set_viewport_size({"width": 1280, "height": 900})
        page.tab.screenshot(path=os.environ["VF_JAX_SCREENSHOT"], full_page=True)
    assert not page.errors and not [m for m in page.console if m[0] == "error"]
    page.tab.close()


def test_a_corrupt_upload_shows_its_error_and_the_next_upload_works(browser, server,
                                                                    small_weights_dir,
                                                                    speech_files, tmp_path):
    page = Page(browser, server)
    page.upload(speech_files["corrupt"])
    page.tab.locator("#restore").click()
    page.tab.get_by_text("cannot read corrupt.wav as audio").first.wait_for()
    page.tab.locator("#upload").get_by_role("button", name="Clear").click()   # same page
    page.upload(speech_files["stereo"])
    got = page.restore_and_download(str(tmp_path / "stereo.wav"))
    assert_same_samples(got, cli(small_weights_dir, speech_files["stereo"],
                                 str(tmp_path / "cli.wav")))
    page.tab.close()


def test_two_pages_restoring_at_once_each_get_their_own_result(browser, server,
                                                               small_weights_dir,
                                                               speech_files, tmp_path):
    pages = {name: Page(browser, server) for name in ("short", "stereo")}
    for name, page in pages.items():
        page.upload(speech_files[name])
    for page in pages.values():          # both queued before either finishes
        page.tab.locator("#restore").click()
    restorer = uploads.Restorers(small_weights_dir)("float32")
    for name, page in pages.items():
        got = page.download(str(tmp_path / f"{name}.wav"))
        alone = uploads.restore_upload(restorer, speech_files[name], uploads.Settings(),
                                       str(tmp_path / "alone"), uploads.Limits(),
                                       figure=False)
        assert_same_samples(got, alone.path)
        page.tab.close()



def test_a_recording_from_the_microphone_is_restored(browser, server, tmp_path):
    """Record about 2 s from the (fake) microphone, restore, download: a
    44.1 kHz WAV as long as the recording, and the recording is not kept."""
    page = Page(browser, server)
    page.tab.locator("#record").get_by_role("button", name="Record").click()
    page.tab.wait_for_timeout(2500)
    page.tab.locator("#record").get_by_role("button", name="Stop").click()
    page.tab.locator("#record audio, #record [data-testid=waveform-controls]").first.wait_for(
        state="attached", timeout=TIMEOUT_MS)
    got = page.restore_and_download(str(tmp_path / "recorded.wav"))
    info = sf.info(got)
    assert info.samplerate == 44100 and 1.0 < info.duration < 6.0, info
    assert "restored" in page.tab.locator("#report").inner_text()
    assert not page.errors
    page.tab.close()
