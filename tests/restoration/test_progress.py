"""The restore command's progress bar counts what is done: never past 100 %,
exactly 100 % at the end, whatever the headers guessed and however the
windows' reports round."""

import re
import warnings

import numpy as np
import soundfile as sf

from vf_jax.cli import main
from vf_jax.restoration.files import AudioProgress


def test_wrong_headers_rounding_and_failures_never_pass_the_total():
    progress = AudioProgress([2.0, 3.0, 1.0], "restoring")
    bar = progress.bar
    seen = []
    with warnings.catch_warnings():
        warnings.simplefilter("error")       # tqdm's "clamping frac" would raise
        progress.start(0)
        progress.read(2.5)                   # longer than its header said
        for part in (1.0, 1.0, 0.51):        # the parts' rounding overshoots
            progress(part)
            seen.append((bar.n, bar.total))
        progress.end(done=True)
        assert (bar.n, bar.total) == (2.5, 6.5)
        progress.start(1)
        progress(2.0)
        progress.end(done=False)             # its seconds leave the total
        assert (bar.n, bar.total) == (2.5, 3.5)
        progress.start(2)
        progress.read(0.8)
        progress(0.79)                       # short of its length: settled at the end
        progress.end(done=True)
        assert bar.n == bar.total == 3.3
    assert all(n <= total for n, total in seen)
    progress.close()


def test_a_long_file_s_windows_end_at_exactly_its_length(small_weights_dir, tmp_path, capsys):
    rate, seconds = 16000, 37.3              # two windows at 44.1 kHz, resampled
    t = np.arange(int(rate * seconds)) / rate
    sf.write(tmp_path / "long.wav", 0.3 * np.sin(2 * np.pi * 220 * t), rate)
    assert main(["restore", "--weights", small_weights_dir, "-i", str(tmp_path / "long.wav"),
                 "-o", str(tmp_path / "out.wav")]) == 0
    err = capsys.readouterr().err
    assert "clamping" not in err
    shown = re.findall(r"([\d.]+)/([\d.]+) s audio", err)
    assert shown and shown[-1] == ("37.3", "37.3")
    assert all(float(n) <= float(total) for n, total in shown)
    assert re.findall(r"(\d+)%", err)[-1] == "100"
