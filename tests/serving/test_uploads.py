"""Restoring what the page is given, without a server: the same samples as
``python -m vf_jax restore``, limits, bad uploads, several files as a zip, and
uploads deleted whatever happens."""

import os
import subprocess
import sys
import time
import zipfile

import numpy as np
import pytest
import soundfile as sf

from vf_jax.errors import UserError
from vf_jax.serving import uploads
from vf_jax.serving.page import Service
from vf_jax.serving.workspace import Workspace


@pytest.fixture(scope="module")
def restorers(small_weights_dir):
    return uploads.Restorers(small_weights_dir)


def staged(workspace, path, name=None):
    """``path`` copied into the workspace as the web framework stores an upload."""
    import shutil
    folder = os.path.join(workspace.framework, "a1b2c3")
    os.makedirs(folder, exist_ok=True)
    return shutil.copy(path, os.path.join(folder, name or os.path.basename(path)))


def cli_restore(weights, src, dst, *extra):
    subprocess.run([sys.executable, "-m", "vf_jax", "restore", "-i", src, "-o", dst,
                    "--weights", weights, "--quiet", *extra], check=True)
    return sf.read(dst, dtype="int16", always_2d=True)


def test_a_page_restoration_is_the_restore_command_s(small_weights_dir, restorers,
                                                    speech_files, tmp_path):
    """Same settings, same file: the same 16-bit samples, rate and channels."""
    settings = uploads.Settings(mode=1, strength=0.8, loudness="input")
    for name in ("short", "stereo"):
        result = uploads.restore_upload(restorers("float32"), speech_files[name], settings,
                                        str(tmp_path), uploads.Limits(), figure=name == "short")
        assert result.error is None
        expected = cli_restore(small_weights_dir, speech_files[name],
                               str(tmp_path / f"cli_{name}.wav"), "--mode", "1",
                               "--strength", "0.8", "--loudness", "input")
        got = sf.read(result.path, dtype="int16", always_2d=True)
        info = sf.info(result.path)
        assert (info.samplerate, info.subtype, info.format) == (44100, "PCM_16", "WAV")
        np.testing.assert_array_equal(got[0], expected[0])
        assert got[0].shape[1] == (2 if name == "stereo" else 1)
        assert result.seconds == pytest.approx(sf.info(speech_files[name]).duration)
    png = os.path.splitext(uploads.restore_upload(
        restorers("float32"), speech_files["short"], settings, str(tmp_path),
        uploads.Limits()).path)[0] + ".png"
    assert open(png, "rb").read(8) == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("name, limits, message", [
    ("corrupt", uploads.Limits(), "cannot read corrupt.wav as audio"),
    ("empty", uploads.Limits(), "empty.wav has no samples"),
    ("nan", uploads.Limits(), "nan.wav contains NaN"),
    ("short", uploads.Limits(max_seconds=2.0), "short.wav is 2.5 s long, over this page's "
                                               "limit of 2 s"),
    ("short", uploads.Limits(max_upload_mb=0.01), "over this page's limit of 0.01 MB"),
])
def test_bad_uploads_give_one_line_naming_the_file_not_the_server_path(
        restorers, speech_files, tmp_path, name, limits, message):
    workspace = Workspace(60, parent=str(tmp_path))
    path = staged(workspace, speech_files[name])
    result = uploads.restore_upload(restorers("float32"), path, uploads.Settings(),
                                    str(tmp_path), limits)
    assert result.path is None and message in result.error
    assert "\n" not in result.error and workspace.root not in result.error
    workspace.close()


def test_several_files_come_back_as_a_zip_and_every_upload_is_deleted(
        restorers, speech_files, tmp_path):
    workspace = Workspace(60, parent=str(tmp_path))
    service = Service(restorers, workspace, uploads.Limits())
    paths = [staged(workspace, speech_files[n]) for n in ("short", "corrupt", "stereo")]
    seen = []
    outcome = service.restore(paths, None, uploads.Settings(),
                              progress=lambda f, desc: seen.append(f))
    with zipfile.ZipFile(outcome.download) as archive:
        assert sorted(archive.namelist()) == ["short_restored.wav", "stereo_restored.wav"]
        for member in archive.namelist():
            alone = uploads.restore_upload(
                restorers("float32"), speech_files[member.split("_")[0]], uploads.Settings(),
                str(tmp_path / "alone"), uploads.Limits(), figure=False)
            with archive.open(member) as f:
                np.testing.assert_array_equal(sf.read(f, dtype="int16")[0],
                                              sf.read(alone.path, dtype="int16")[0])
    assert "cannot read corrupt.wav as audio" in outcome.report
    assert outcome.play.endswith("short_restored.wav") and outcome.figure.endswith(".png")
    assert seen and all(0 <= f <= 1 for f in seen) and seen == sorted(seen)
    assert not any(os.path.exists(p) for p in paths)
    assert not os.listdir(workspace.framework)          # the upload folders too
    # Nothing restorable: one error, and still nothing left behind.
    bad = staged(workspace, speech_files["corrupt"])
    with pytest.raises(UserError, match="cannot read corrupt.wav"):
        service.restore([bad], None, uploads.Settings())
    assert not os.path.exists(bad)
    with pytest.raises(UserError, match="upload an audio file"):
        service.restore([], None, uploads.Settings())
    with pytest.raises(UserError, match="strength must be between 0 and 1"):
        service.restore([staged(workspace, speech_files["short"])], None,
                        uploads.Settings(strength=2.0))
    assert not os.listdir(workspace.framework)
    workspace.close()
    assert not os.path.exists(workspace.root)


def test_progress_follows_windows_up_to_the_whole_request(restorers, speech_files, tmp_path):
    """A file cut into windows (1 s here) reports each window's new seconds;
    the page's bar rises through the request and reaches 1."""
    from vf_jax.restoration.restorer import Restorer
    workspace = Workspace(60, parent=str(tmp_path))
    windowed = Restorer(restorers.variables, restorers.meta, max_window_seconds=1.0,
                        overlap_seconds=0.25)
    service = Service(lambda precision: windowed, workspace, uploads.Limits())
    seen = []
    service.restore([staged(workspace, speech_files["short"]),
                     staged(workspace, speech_files["stereo"])], None, uploads.Settings(),
                    progress=lambda f, desc: seen.append((f, desc)))
    fractions = [f for f, _ in seen]
    assert len(windowed.windows(int(2.5 * 44100))) > 2
    assert len(seen) > 4 and fractions == sorted(fractions) and fractions[-1] == pytest.approx(1)
    assert fractions[len(windowed.windows(int(2.5 * 44100))) - 1] == pytest.approx(2.5 / 5.5)
    assert seen[0][1] == "restoring short.wav" and seen[-1][1] == "restoring stereo.flac"
    workspace.close()


def test_the_workspace_deletes_only_inside_itself_and_sweeps_old_results(tmp_path):
    workspace = Workspace(keep_seconds=60, parent=str(tmp_path))
    outside = tmp_path / "user.wav"
    outside.write_bytes(b"user data")
    workspace.remove_upload(str(outside))
    workspace.remove_upload(os.path.join(workspace.framework, "..", "..", "user.wav"))
    link = os.path.join(workspace.framework, "link.wav")
    os.symlink(outside, link)
    workspace.remove_upload(link)
    assert outside.read_bytes() == b"user data"
    old, new = workspace.result_folder(), workspace.result_folder()
    os.utime(old, (0, 0))
    assert workspace.sweep() == 1
    assert not os.path.exists(old) and os.path.exists(new)
    assert workspace.sweep(now=os.path.getmtime(new) + 61) == 1 and not os.path.exists(new)
    # In the background, without requests: a result older than its time goes.
    workspace.keep_seconds = 0.2
    last = workspace.result_folder()
    thread = workspace.sweep_every(0.1)
    deadline = time.time() + 10
    while os.path.exists(last) and time.time() < deadline:
        time.sleep(0.05)
    assert not os.path.exists(last)
    workspace.close()
    thread.join(timeout=5)
    assert not thread.is_alive() and not os.path.exists(workspace.root)
