"""The offline demo: degrade the shipped clip, restore it, show the difference.

Writes ``clean.wav``, ``degraded.wav``, ``restored.wav`` (when weights are
present), ``spectrograms.png`` and ``metrics.md`` into the output folder.

The degradation is the training data's GSR chain on device
(:mod:`vf_jax.degradations`) with fixed settings, so the damage is plainly
visible: reverberation, clipping, band limit, noise, gain.
"""

from __future__ import annotations

import os
import sys
from importlib import resources

import numpy as np

from vf_jax import audio_io, metrics
from vf_jax import weights as weights_lib
from vf_jax.errors import UserError

SR = 44100
CLIP = "clean_speech.flac"


def load_clip() -> np.ndarray:
    with resources.as_file(resources.files("vf_jax") / "data" / CLIP) as path:
        audio, sr = audio_io.read_audio(str(path))
    return audio_io.resample(audio, sr, SR)[:, 0]


def degrade_preview(clean: np.ndarray, seed: int = 0) -> np.ndarray:
    """The GSR degradations (:mod:`vf_jax.degradations`) with fixed, visible
    settings: a synthetic room (RT60 0.4 s), clipping at 40 % of the peak, an
    8th-order Butterworth band limit at 4 kHz, pink noise at 10 dB SNR, gain
    0.7. ``seed`` draws the noise and the room."""
    import jax
    import jax.numpy as jnp

    from vf_jax import degradations, synthetic
    rng = np.random.default_rng(seed)
    config = degradations.gsr_config()
    params = degradations.sample_gsr(jax.random.PRNGKey(seed), config)
    params.update(
        speech_lowpass_on=False, clip_on=True, clip_ratio=2.5, reverb_on=True,
        band_limit_on=True, kind=degradations.BAND_LIMITS.index("butter"), order=8,
        cutoff=4000.0, speech_second_resample=False, noise_band_limit=False,
        noise_on=True, snr_db=10.0, gain=0.7)
    params = {k: jnp.asarray(v) for k, v in params.items()}
    noise = synthetic.pink_noise(len(clean), rng)
    rir = synthetic.room_impulse_response(rng, rt60=0.4)
    degrade = jax.jit(lambda p, x, n, r: degradations.apply_gsr(p, x, n, r, config))
    degraded, _ = degrade(params, jnp.asarray(clean, jnp.float32), noise, rir)
    return np.asarray(degraded, np.float32)


def plot_spectrograms(signals: dict[str, np.ndarray], path: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from vf_jax import mel as mel_lib
    fe = mel_lib.FRONT_ENDS[SR]
    fig, axes = plt.subplots(len(signals), 1, figsize=(10, 2.6 * len(signals)),
                             sharex=True, squeeze=False)
    for ax, (name, x) in zip(axes[:, 0], signals.items()):
        mel, _ = mel_lib.mel_spectrogram(np.asarray(x, np.float32), fe)
        im = ax.imshow(np.asarray(mel_lib.to_log(mel)).T, origin="lower", aspect="auto",
                       vmin=-5, vmax=2, cmap="magma",
                       extent=(0, len(x) / SR, 0, fe.n_mels))
        ax.set_title(name)
        ax.set_ylabel("mel band")
    axes[-1, 0].set_xlabel("time (s)")
    fig.colorbar(im, ax=axes[:, 0].tolist(), label="log10 mel magnitude")
    fig.savefig(path, dpi=90)
    plt.close(fig)


def run(out_dir: str, weights_dir: str | None = None, seed: int = 0,
        quiet: bool = False) -> int:
    say = (lambda *a: None) if quiet else (lambda *a: print(*a, file=sys.stderr))
    try:
        os.makedirs(out_dir, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot create {out_dir}: {e.strerror}") from None
    clean = load_clip()
    degraded = degrade_preview(clean, seed)
    audio_io.write_audio(os.path.join(out_dir, "clean.wav"), clean, SR)
    audio_io.write_audio(os.path.join(out_dir, "degraded.wav"), degraded, SR)
    signals = {"clean (shipped clip)": clean, "degraded (band limit, reverb, clipping, noise)": degraded}

    weights_dir = weights_dir or weights_lib.default_weights_dir()
    restored = None
    if weights_lib.is_weights_dir(weights_dir):
        from vf_jax.restore import Restorer
        say(f"restoring with the weights in {weights_dir} ...")
        restored = Restorer.from_folder(weights_dir).restore(degraded, SR)
        audio_io.write_audio(os.path.join(out_dir, "restored.wav"), restored, SR)
        signals["restored"] = restored
    else:
        say(f"No converted weights at {weights_dir}: this demo only degrades the clip\n"
            "and measures the damage; it does not restore. To restore, download vf.ckpt\n"
            "(Zenodo record 5600188) and model.ckpt-1490000_trimed.pt (record 5469951),\n"
            f"then: python -m vf_jax convert --analysis vf.ckpt --vocoder "
            f"model.ckpt-1490000_trimed.pt --out {weights_dir}")
    plot_spectrograms(signals, os.path.join(out_dir, "spectrograms.png"))

    rows = [("degraded", degraded)] + ([("restored", restored)] if restored is not None else [])
    table = ["| signal | SI-SDR (dB) | LSD |", "| --- | ---: | ---: |"]
    for name, x in rows:
        table.append(f"| {name} | {metrics.si_sdr(clean, x):.2f} | {metrics.lsd(clean, x):.3f} |")
    table_text = "\n".join(table) + "\n"
    with open(os.path.join(out_dir, "metrics.md"), "w") as f:
        f.write("Against the clean clip:\n\n" + table_text)
    say("\n" + table_text)
    files = ["clean.wav", "degraded.wav"] + (["restored.wav"] if restored is not None else []) \
        + ["spectrograms.png", "metrics.md"]
    say(f"wrote {', '.join(files)} to {os.path.abspath(out_dir)}")
    return 0
