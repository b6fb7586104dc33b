"""``python -m vf_jax serve`` as a process, driven through Gradio's own client:
results equal the library's, bad uploads answer with their error and the
server goes on, a short loop of mixed requests leaves its memory flat and no
upload on disk, files outside its folder are refused, and Ctrl-C removes
everything it kept. (The browser tests: test_browser.py.)"""

import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
import soundfile as sf

from vf_jax.serving import uploads

from page_testing import free_port, need

pytestmark = pytest.mark.multiprocess


def resident_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) / 1024


def wait_until_up(url: str, process, timeout: float = 240.0) -> None:
    end = time.time() + timeout
    while time.time() < end:
        assert process.poll() is None, process.communicate()[1][-2000:]
        try:
            urllib.request.urlopen(url, timeout=2).read()
            return
        except (urllib.error.URLError, ConnectionError, OSError):
            time.sleep(0.5)
    raise AssertionError("the server did not answer")


@pytest.fixture(scope="module")
def server(small_weights_dir, tmp_path_factory):
    """``(url, process, its TMPDIR)``: the page with the small weights."""
    need("gradio", "the page's requirements, requirements-serve.txt")
    tmp = tmp_path_factory.mktemp("server_tmp")
    port = free_port()
    env = dict(os.environ, TMPDIR=str(tmp))
    process = subprocess.Popen(
        [sys.executable, "-m", "vf_jax", "serve", "--weights", small_weights_dir,
         "--port", str(port), "--max-seconds", "20", "--max-upload-mb", "1"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}/"
    try:
        wait_until_up(url, process)
        yield url, process, tmp
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


def upload_copy(src: str, folder, name: str) -> str:
    os.makedirs(folder, exist_ok=True)
    return shutil.copy(src, os.path.join(folder, name))


def test_requests_in_a_loop_leave_the_server_answering_flat_and_clean(
        server, small_weights_dir, speech_files, tmp_path):
    """20 requests, good and bad in turn (the benchmark runs 100): each good
    one returns the library's restoration, each bad one its one-line error;
    resident memory after 20 within 10 % of after 10; no upload on disk."""
    need("gradio_client", "installed with gradio")
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError
    url, process, tmp = server
    client = Client(url, verbose=False, download_files=str(tmp_path / "client"))
    expected = uploads.restore_upload(uploads.Restorers(small_weights_dir)("float32"),
                                      speech_files["short"], uploads.Settings(),
                                      str(tmp_path / "library"), uploads.Limits(),
                                      figure=False)
    expected = sf.read(expected.path, dtype="int16")[0]
    kinds = ["short", "corrupt", "short", "nan", "short", "empty"]
    memory = {}
    for i in range(20):
        kind = kinds[i % len(kinds)]
        path = upload_copy(speech_files[kind], tmp_path / "sent", f"upload-{i:02d}.wav")
        if kind == "short":
            play, download, figure, report = client.predict(
                [handle_file(path)], None, 0, 1.0, "peak", "float32", api_name="/restore")
            np.testing.assert_array_equal(sf.read(download, dtype="int16")[0], expected)
            assert f"upload-{i:02d}.wav | 2.50 s" in report
        else:
            with pytest.raises(AppError, match=f"upload-{i:02d}.wav"):
                client.predict([handle_file(path)], None, 0, 1.0, "peak", "float32",
                               api_name="/restore")
        if i + 1 in (10, 20):
            memory[i + 1] = resident_mb(process.pid)
    assert process.poll() is None
    assert memory[20] <= 1.1 * memory[10], memory
    left = [os.path.join(d, f) for d, _, files in os.walk(tmp) for f in files]
    assert not [f for f in left if os.path.basename(f).startswith(("upload-", "tmp"))
                and "_restored" not in f], left
    assert any(f.endswith("upload-00_restored.wav") for f in left)   # results are kept


def test_an_upload_over_the_size_limit_is_refused_before_it_is_stored(server, tmp_path):
    """--max-upload-mb 1: Gradio's client refuses a 2.6 MB file before sending
    it, and the server, sent it anyway, refuses it while it arrives (HTTP 413)
    and keeps nothing of it."""
    need("gradio_client", "installed with gradio")
    import httpx
    from gradio_client import Client, handle_file
    url, process, tmp = server
    big = tmp_path / "upload-big.wav"
    sf.write(big, np.zeros((15 * 44100, 1), np.float32), 44100, subtype="FLOAT")
    client = Client(url, verbose=False, download_files=str(tmp_path / "client"))
    with pytest.raises(Exception, match="exceeds the maximum file size of 1000000 bytes"):
        client.predict([handle_file(str(big))], None, 0, 1.0, "peak", "float32",
                       api_name="/restore")
    answer = httpx.post(url + "gradio_api/upload",
                        files={"files": ("upload-big.wav", big.read_bytes(), "audio/wav")})
    assert answer.status_code == 413, answer.text
    assert process.poll() is None
    left = [os.path.join(d, f) for d, _, files in os.walk(tmp) for f in files]
    assert not [f for f in left if os.path.getsize(f) > 900_000 or "upload-big" in f], left


def test_files_outside_the_server_s_folder_are_refused(server, tmp_path):
    url, _, _ = server
    secret = tmp_path / "secret.txt"
    secret.write_text("not for the page")
    for path in (str(secret), "/etc/passwd", os.path.abspath("README.md")):
        for route in ("gradio_api/file=", "file="):
            try:
                urllib.request.urlopen(url + route + path, timeout=10)
                raise AssertionError(f"served {path}")
            except urllib.error.HTTPError as e:
                assert e.code in (403, 404), (path, e.code)


def test_ctrl_c_stops_the_server_and_removes_its_folder(server):
    url, process, tmp = server
    assert [p for p in os.listdir(tmp) if p.startswith("vf_jax-serve-")]
    process.send_signal(signal.SIGINT)
    process.communicate(timeout=60)
    assert process.returncode in (0, 130)
    assert not [p for p in os.listdir(tmp) if p.startswith("vf_jax-serve-")]


def serve(*args, **kwargs):
    return subprocess.run([sys.executable, "-m", "vf_jax", "serve", *args],
                          capture_output=True, text=True, timeout=300, **kwargs)


@pytest.mark.parametrize("args, message", [
    (["--port", "0"], "--port must be 1-65535"),
    (["--max-seconds", "0"], "--max-seconds must be positive"),
    (["--keep-minutes", "-1"], "--keep-minutes must be positive"),
    (["--offline"], "python -m vf_jax weights download"),
    (["--weights", "/nonexistent/weights"], "/nonexistent/weights"),
])
def test_bad_settings_are_one_line_errors(args, message):
    done = serve(*args)
    assert done.returncode != 0 and message in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "Traceback" not in done.stderr


def test_a_taken_port_and_a_missing_gradio_are_one_line_errors(small_weights_dir, tmp_path):
    import socket
    need("gradio", "the page's requirements, requirements-serve.txt")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = serve("--weights", small_weights_dir, "--port", str(port), "--quiet",
                     env=dict(os.environ, TMPDIR=str(tmp_path)))
    assert done.returncode == 1 and f"cannot listen on 127.0.0.1:{port}" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert not os.listdir(tmp_path)                       # nothing left behind
    blocker = tmp_path / "no_gradio"
    blocker.mkdir()
    (blocker / "gradio.py").write_text("raise ImportError('not installed')\n")
    done = serve("--weights", small_weights_dir, "--quiet",
                 env=dict(os.environ, PYTHONPATH=f"{blocker}{os.pathsep}"
                          f"{os.environ.get('PYTHONPATH', '')}"))
    assert done.returncode == 1 and "pip install -r requirements-serve.txt" in done.stderr
