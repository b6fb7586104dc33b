"""The published weights in one command, against a loopback server with
Zenodo's paths and shapes (the test starts and stops it; nothing is fetched
from the internet): a clean download, a connection cut halfway and resumed,
a wrong checksum, a missing file, a server that stops answering, a full disk
and an unwritable target. Each ends in a complete, verified weights folder or
in one line and a non-zero exit, with nothing half-written left behind."""

import contextlib
import hashlib
import http.server
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections import namedtuple

import numpy as np
import pytest

from tests.helpers import assert_same_tree
from vf_jax.cli import main
from vf_jax.errors import UserError
from vf_jax.restoration import download, weights

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class Zenodo(http.server.ThreadingHTTPServer):
    """Records as Zenodo's API serves them: ``/api/records/<id>`` lists each
    file's key, size, ``md5:`` checksum and link (on zenodo.org, which the
    client maps onto this host), ``/api/records/<id>/files/<key>/content``
    serves it, with range requests. Faults: ``cut`` (bytes sent before the
    connection drops, once per file), ``wrong_md5``, ``missing``, ``stall``
    (no answer), ``stall_after`` (bytes sent before the answer stops),
    ``oversize`` (the metadata lists fewer bytes than the file has)."""
    daemon_threads = True

    def __init__(self, files):
        super().__init__(("127.0.0.1", 0), Handler)
        self.files = files               # record -> {name: bytes}
        self.cut, self.wrong_md5, self.missing, self.stall = {}, set(), set(), set()
        self.stall_after, self.oversize = {}, set()
        self.ranges = []                 # the Range headers asked for
        self.fetched = []                # the files whose content was asked for

    def handle_error(self, request, client_address):
        pass            # a client that gave up on a stalled answer is the point

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server_address[1]}"


class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        server = self.server
        parts = self.path.strip("/").split("/")
        if len(parts) == 3 and parts[:2] == ["api", "records"] and int(parts[2]) in server.files:
            record = int(parts[2])
            entries = [{"key": name, "size": len(data) - 10 * (name in server.oversize),
                        "checksum": "md5:" + (("0" * 32) if name in server.wrong_md5
                                              else hashlib.md5(data).hexdigest()),
                        "links": {"self": f"https://zenodo.org/api/records/{record}/files/"
                                          f"{name}/content"}}
                       for name, data in server.files[record].items()]
            return self.send(json.dumps({"id": record, "files": entries, "metadata": {
                "license": {"id": f"test-licence-{record}"}}}).encode())
        if len(parts) == 6 and parts[-1] == "content":
            name = parts[4]
            server.fetched.append(name)
            data = server.files.get(int(parts[2]), {}).get(name)
            if data is None or name in server.missing:
                return self.send(b"not found", 404)
            if name in server.stall:
                time.sleep(6)
                return
            start = 0
            if "Range" in self.headers:
                server.ranges.append(self.headers["Range"])
                start = int(self.headers["Range"].split("=")[1].rstrip("-"))
            body = data[start:]
            self.send_response(206 if start else 200)
            self.send_header("Content-Length", str(len(body)))
            if start:
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            self.end_headers()
            if name in server.stall_after:
                self.wfile.write(body[:server.stall_after[name]])
                self.wfile.flush()
                time.sleep(6)
                return
            cut = server.cut.pop(name, None)
            self.wfile.write(body if cut is None else body[:cut])
            if cut is not None:
                self.wfile.flush()
                self.close_connection = True
            return
        self.send(b"not found", 404)

    def send(self, body, code=200):
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@contextlib.contextmanager
def serving(oracle):
    _, vf_path, voc_path = oracle
    files = {p.record: {p.name: open(path, "rb").read()}
             for p, path in zip(download.PUBLISHED, (vf_path, voc_path))}
    server = Zenodo(files)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


Paths = namedtuple("Paths", "target cache")


@pytest.fixture
def paths(tmp_path, monkeypatch):
    monkeypatch.setenv("VF_JAX_DOWNLOADS", str(tmp_path / "downloads"))
    return Paths(tmp_path / "home" / "weights", tmp_path / "downloads")


def run(server, paths, *extra, timeout=10):
    return main(["weights", "download", "--to", str(paths.target), "--mirror", server.url,
                 "--quiet", "--timeout", str(timeout), *extra])


def one_error_line(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "error:" in err[0] and "Traceback" not in err[0], err
    return err[0]


def leftovers(paths):
    """Files a failure left: none beside the target, no finished download
    that was not verified."""
    parent = paths.target.parent
    beside = sorted(os.listdir(parent)) if parent.exists() else []
    cache = sorted(os.listdir(paths.cache)) if paths.cache.exists() else []
    return beside, cache


def test_a_clean_download_converts_without_pytorch(oracle, converted, tmp_path):
    """The floor: in a process where ``import torch`` fails, download from the
    server, convert, get the variables the PyTorch reader gave, and restore."""
    from vf_jax.audio import io as audio_io
    from vf_jax.data.clip import load_clip
    target = tmp_path / "weights"
    clip, out = tmp_path / "clip.wav", tmp_path / "restored.wav"
    audio_io.write_audio(str(clip), load_clip()[:22050], 44100)
    with serving(oracle) as server:
        script = ("import sys; sys.modules['torch'] = None\n"
                  "from vf_jax.cli import main\n"
                  "code = main(sys.argv[1:7]) or main(['restore', '--weights', sys.argv[4],\n"
                  "                                    '-i', sys.argv[7], '-o', sys.argv[8]])\n"
                  "sys.exit(code)\n")
        proc = subprocess.run(
            [sys.executable, "-c", script, "weights", "download", "--to", str(target),
             "--mirror", server.url, str(clip), str(out)],
            capture_output=True, text=True, cwd=ROOT,
            env=dict(os.environ, PYTHONPATH=ROOT, JAX_PLATFORMS="cpu",
                     VF_JAX_DOWNLOADS=str(tmp_path / "downloads")))
    assert proc.returncode == 0, proc.stderr[-2000:]
    restored, rate = audio_io.read_audio(str(out))
    assert rate == 44100 and restored.shape[0] == 22050 and np.all(np.isfinite(restored))
    variables, meta = weights.load(str(target))
    assert_same_tree(variables, converted[0])
    names = {p["file"] for p in meta["provenance"].values()}
    assert names == {p.name for p in download.PUBLISHED}
    for p in meta["provenance"].values():   # the SHA-256 of what was fetched
        data = open(tmp_path / "downloads" / p["file"], "rb").read()
        assert p["sha256"] == hashlib.sha256(data).hexdigest()
    assert {p["licence"] for p in meta["provenance"].values()} == {
        f"test-licence-{p.record}" for p in download.PUBLISHED}       # as the record says


def test_a_cut_connection_resumes_with_a_range_request(oracle, converted, paths, capsys):
    with serving(oracle) as server:
        size = len(server.files[5600188]["vf.ckpt"])
        server.cut["vf.ckpt"] = size // 2
        assert run(server, paths) == 0
        assert server.ranges == [f"bytes={size // 2}-"]
        assert_same_tree(weights.load(str(paths.target))[0], converted[0])
        # Run again: the folder is verified and kept, nothing fetched.
        server.missing.update(n for files in server.files.values() for n in files)
        assert run(server, paths) == 0
        assert "kept" in capsys.readouterr().err


def test_an_interrupted_download_resumes_in_the_next_run(oracle, converted, paths, capsys):
    with serving(oracle) as server:
        size = len(server.files[5469951]["model.ckpt-1490000_trimed.pt"])
        server.stall_after["model.ckpt-1490000_trimed.pt"] = size // 10
        assert run(server, paths, timeout=1) == 1
        assert "run again to resume" in one_error_line(capsys)
        assert not paths.target.exists()
        part = paths.cache / "model.ckpt-1490000_trimed.pt.part"
        kept = part.stat().st_size
        assert kept == download.TRIES * (size // 10)      # each try resumed the last
        server.stall_after.clear()
        assert run(server, paths) == 0
        assert server.ranges[-1] == f"bytes={kept}-"
        assert not part.exists()
        assert_same_tree(weights.load(str(paths.target))[0], converted[0])


@pytest.mark.parametrize("fault", ["wrong_md5", "missing", "stall", "oversize"])
def test_a_failed_download_leaves_no_weights_folder(oracle, paths, capsys, fault):
    with serving(oracle) as server:
        getattr(server, fault).add("vf.ckpt")
        assert run(server, paths, timeout=1 if fault == "stall" else 10) == 1
    line = one_error_line(capsys)
    expected = {"wrong_md5": "checksum mismatch", "missing": "HTTP 404",
                "stall": "no answer in time", "oversize": "sent more than"}[fault]
    assert expected in line and "vf.ckpt" in line
    beside, cache = leftovers(paths)
    assert beside == [] and not paths.target.exists()
    assert "vf.ckpt" not in cache                        # never an unverified finished file
    if fault in ("wrong_md5", "oversize"):
        assert "vf.ckpt.part" not in cache                # a bad download is deleted


def test_no_record_and_a_bad_mirror_are_one_line(paths, capsys, oracle):
    with serving(oracle) as server:
        server.files.pop(5469951)
        assert run(server, paths) == 1
    assert "5469951" in one_error_line(capsys)
    assert main(["weights", "download", "--to", str(paths.target), "--mirror",
                 "http://127.0.0.1:9", "--quiet", "--timeout", "1"]) == 1
    assert "Zenodo record" in one_error_line(capsys)
    assert not paths.target.exists()


def test_a_full_disk_stops_before_fetching(oracle, paths, capsys, monkeypatch):
    usage = shutil.disk_usage
    monkeypatch.setattr(download.shutil, "disk_usage",
                        lambda p: usage(p)._replace(free=1000))
    with serving(oracle) as server:
        assert run(server, paths) == 1
        assert server.ranges == []
    assert "not enough free space" in one_error_line(capsys)
    assert leftovers(paths) == ([], [])


def test_a_disk_that_fills_up_midway_deletes_the_partial_file(oracle, paths, capsys,
                                                             monkeypatch):
    real_open = open

    class Full:
        def __init__(self, f):
            self.f = f

        def __enter__(self):
            return self

        def __exit__(self, *a):
            self.f.close()

        def write(self, block):
            raise OSError(28, "No space left on device")

    def full_open(path, mode="r", *a, **k):
        f = real_open(path, mode, *a, **k)
        return Full(f) if str(path).endswith(".part") else f
    monkeypatch.setattr("builtins.open", full_open)
    with serving(oracle) as server:
        assert run(server, paths) == 1
    monkeypatch.setattr("builtins.open", real_open)
    assert "disk filled up" in one_error_line(capsys)
    assert leftovers(paths) == ([], [])


def test_an_unwritable_target_fails_before_fetching(oracle, tmp_path, paths, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    with serving(oracle) as server:
        assert main(["weights", "download", "--to", str(blocker / "weights"), "--mirror",
                     server.url, "--quiet"]) == 1
        assert server.ranges == []
    assert "cannot write the weights folder" in one_error_line(capsys)
    assert not paths.cache.exists()


def test_existing_folders_are_kept_or_replaced_only_when_asked(oracle, converted, paths,
                                                               capsys, tmp_path):
    other = tmp_path / "home" / "weights"
    other.mkdir(parents=True)
    (other / "notes.txt").write_text("mine")
    with serving(oracle) as server:
        assert run(server, paths) == 1
        assert "exists" in one_error_line(capsys)
        assert (other / "notes.txt").read_text() == "mine"
        assert run(server, paths, "--overwrite") == 1      # not a weights folder
        assert "refusing" in one_error_line(capsys)
        (other / "notes.txt").unlink()
        assert run(server, paths) == 0                     # an empty folder is filled
        assert run(server, paths, "--overwrite") == 0      # from the cache, verified
    assert_same_tree(weights.load(str(paths.target))[0], converted[0])


def test_from_files_and_clearing_the_cache(oracle, converted, paths, capsys):
    _, vf_path, voc_path = oracle
    assert main(["weights", "download", "--to", str(paths.target), "--from-files",
                 vf_path, voc_path, "--quiet"]) == 0
    assert_same_tree(weights.load(str(paths.target))[0], converted[0])
    paths.cache.mkdir()
    (paths.cache / "vf.ckpt.part").write_bytes(b"x" * 10)
    assert main(["weights", "clear-cache"]) == 0
    assert not paths.cache.exists()
    with pytest.raises(UserError, match="not found"):
        download.download_weights(str(paths.target) + "2", from_files=("absent", voc_path))


def test_first_use_downloads_unless_offline(oracle, converted, tmp_path, monkeypatch, capsys):
    """``restore`` with no weights anywhere: offline, one line naming the
    command; online, the weights are fetched (with their sizes said), converted
    into the default folder, and the file restored; a folder named with
    ``--weights`` that does not exist stays an error."""
    from vf_jax.audio import io as audio_io
    from vf_jax.data.clip import load_clip
    from vf_jax.restoration.restorer import Restorer
    clip = tmp_path / "clip.wav"
    audio_io.write_audio(str(clip), load_clip()[:44100], 44100)
    default = tmp_path / "default_weights"
    monkeypatch.setenv("VF_JAX_WEIGHTS", str(default))
    monkeypatch.setenv("VF_JAX_DOWNLOADS", str(tmp_path / "downloads"))
    restore = ["restore", "-i", str(clip), "-o", str(tmp_path / "out.wav"), "--quiet"]
    assert main(restore) == 1                         # the session is offline (conftest)
    line = one_error_line(capsys)
    assert "python -m vf_jax weights download" in line and str(default) in line
    with pytest.raises(UserError, match="weights download"):
        Restorer.from_folder()
    monkeypatch.delenv("VF_JAX_OFFLINE")
    assert main(restore + ["--offline"]) == 1
    assert "weights download" in one_error_line(capsys)
    assert main(restore + ["--weights", str(tmp_path / "absent")]) == 1
    assert "weights folder not found" in one_error_line(capsys)
    assert not default.exists() and not (tmp_path / "out.wav").exists()
    with serving(oracle) as server:
        monkeypatch.setenv("VF_JAX_MIRROR", server.url)
        assert main(restore[:-1]) == 0
    err = capsys.readouterr().err
    assert "no weights in" in err and "vf.ckpt (" in err and " MB)" in err
    assert_same_tree(weights.load(str(default))[0], converted[0])
    assert (tmp_path / "out.wav").exists()


def test_two_processes_fetching_one_file_take_turns(tmp_path, capsys):
    """While another process holds the cache's lock for a file, a fetch waits
    (saying so) without touching the file; then it finds the first's verified
    download, or fetches it itself."""
    import fcntl
    data = os.urandom(200_000)
    server = Zenodo({7: {"x.bin": data}})
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        remote = download.record_files(7, mirror=server.url)["x.bin"]
        cache = tmp_path / "downloads"
        cache.mkdir()
        results = []
        with open(cache / "x.bin.lock", "a") as held:
            fcntl.flock(held, fcntl.LOCK_EX)
            waiting = threading.Thread(
                target=lambda: results.append(download.fetch(remote, str(cache), timeout=5)))
            waiting.start()
            waiting.join(timeout=1.5)
            assert waiting.is_alive() and not (cache / "x.bin.part").exists()
            # The holder finishes its download meanwhile.
            (cache / "x.bin").write_bytes(data)
            fcntl.flock(held, fcntl.LOCK_UN)
        waiting.join(timeout=30)
        assert results == [str(cache / "x.bin")] and not server.fetched   # found, not fetched
        assert "another process is downloading x.bin" in capsys.readouterr().err
        os.remove(cache / "x.bin")
        assert download.fetch(remote, str(cache), quiet=True) == str(cache / "x.bin")
        assert (cache / "x.bin").read_bytes() == data and server.fetched == ["x.bin"]
        assert sorted(os.listdir(cache)) == ["x.bin"]          # no lock file left
    finally:
        server.shutdown()
        server.server_close()
