"""The offline demo: degrade the shipped clip, restore it, show the difference.

Writes ``clean.wav``, ``degraded.wav``, ``restored.wav``, ``spectrograms.png``
and ``metrics.md`` into the output folder.

With converted weights, ``restored.wav`` is VoiceFixer's restoration. Without
them, the demo trains the tiny VF-DNN (``configs/tiny.py``) for about a minute
on this one clip, restores the mel with it and makes sound with Griffin-Lim: a
working end-to-end run of the training and restoration code, not VoiceFixer's
quality (the network has seen only this clip, and Griffin-Lim
is no vocoder).

The degradation is the training data's GSR chain on device
(:mod:`vf_jax.audio.degradations`) with fixed settings, so the damage is plainly
visible: reverberation, clipping, band limit, noise, gain.
"""

from __future__ import annotations

import os
import sys

import numpy as np

from vf_jax.audio import io as audio_io
from vf_jax.audio.io import SAMPLE_RATE
from vf_jax.audio.spectrogram_figure import plot_spectrograms
from vf_jax.data.clip import load_clip
from vf_jax.errors import UserError
from vf_jax.evaluation import metrics
from vf_jax.restoration import weights as weights_lib

HELP = "degrade the shipped clip and restore it (offline)"


def add_arguments(p) -> None:
    p.add_argument("--out", default="demo_out", help="folder for the results (default demo_out)")
    p.add_argument("--weights", default=None, help="weights folder (default: the cache)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--train-seconds", type=float, default=60.0,
                   help="without converted weights: train the tiny model this long on the "
                        "clip and restore with it (default 60; 0: only degrade)")
    p.add_argument("--train-steps", type=int, default=None,
                   help="train exactly this many steps instead (same result on any machine)")
    p.add_argument("--quiet", action="store_true")


def main(args) -> int:
    from vf_jax.compilation import enable_compilation_cache
    enable_compilation_cache()
    if not args.train_seconds >= 0:
        raise UserError("--train-seconds must be 0 or more")
    if args.train_steps is not None and args.train_steps < 1:
        raise UserError("--train-steps must be 1 or more")
    return run(args.out, args.weights, seed=args.seed, quiet=args.quiet,
                    train_seconds=args.train_seconds, train_steps=args.train_steps)


def degrade_preview(clean: np.ndarray, seed: int = 0) -> np.ndarray:
    """The GSR degradations (:mod:`vf_jax.audio.degradations`) with fixed, visible
    settings: a synthetic room (RT60 0.4 s), clipping at 40 % of the peak, an
    8th-order Butterworth band limit at 4 kHz, pink noise at 10 dB SNR, gain
    0.7. ``seed`` draws the noise and the room."""
    import jax
    import jax.numpy as jnp

    from vf_jax.audio import degradations, synthetic
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


def restore_with_tiny_model(degraded: np.ndarray, train_seconds: float, seed: int = 0,
                            quiet: bool = False, train_steps: int | None = None) -> np.ndarray:
    """Train the tiny VF-DNN on the shipped clip for ``train_seconds`` (or
    exactly ``train_steps`` steps, whatever the machine's speed; in a temporary
    folder), restore ``degraded``'s mel with it, Griffin-Lim."""
    import tempfile

    from vf_jax import config_files
    from vf_jax.audio import mel as mel_lib
    from vf_jax.audio import mel_inversion
    from vf_jax.training.analysis import train as analysis_training
    config = config_files.get_config("tiny")
    config.num_steps = train_steps or 10 ** 9          # else the time budget stops it
    config.max_train_seconds = 0.0 if train_steps else float(train_seconds)
    config.eval_every = 0
    config.checkpoint_every = 10 ** 9
    config.tensorboard = False
    config.seed = seed
    config.quiet = quiet
    with tempfile.TemporaryDirectory(prefix="vf_jax_demo_") as workdir:
        state = analysis_training.train_and_evaluate(config, workdir)
    log_mel = analysis_training.restore_log_mel(config, state, degraded)
    front_end = mel_lib.FRONT_ENDS[SAMPLE_RATE]
    return np.asarray(mel_inversion.griffin_lim(log_mel, front_end, len(degraded)))


def run(out_dir: str, weights_dir: str | None = None, seed: int = 0,
        quiet: bool = False, train_seconds: float = 60.0, train_steps: int | None = None) -> int:
    say = (lambda *a: None) if quiet else (lambda *a: print(*a, file=sys.stderr))
    try:
        os.makedirs(out_dir, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot create {out_dir}: {e.strerror}") from None
    clean = load_clip()
    degraded = degrade_preview(clean, seed)
    audio_io.write_audio(os.path.join(out_dir, "clean.wav"), clean, SAMPLE_RATE)
    audio_io.write_audio(os.path.join(out_dir, "degraded.wav"), degraded, SAMPLE_RATE)
    signals = {"clean (shipped clip)": clean,
               "degraded (band limit, reverb, clipping, noise)": degraded}

    weights_dir = weights_dir or weights_lib.default_weights_dir()
    restored = None
    if weights_lib.is_weights_dir(weights_dir):
        from vf_jax.restoration.restorer import Restorer
        say(f"restoring with the weights in {weights_dir} ...")
        restored = Restorer.from_folder(weights_dir).restore(degraded, SAMPLE_RATE)
        audio_io.write_audio(os.path.join(out_dir, "restored.wav"), restored, SAMPLE_RATE)
        signals["restored"] = restored
    else:
        # The demo stays offline: it names the command, it does not download.
        to = "" if weights_dir == weights_lib.default_weights_dir() else f" --to {weights_dir}"
        how = ("For VoiceFixer's restoration, fetch its published weights once (0.5 GB,\n"
               f"verified and converted): python -m vf_jax weights download{to}")
        if train_steps or train_seconds > 0:
            budget = f"{train_steps} steps" if train_steps else f"{train_seconds:g} s"
            say(f"No converted weights at {weights_dir}. Instead, this demo trains a tiny\n"
                f"VF-DNN for {budget} on this one clip and turns its restored mel into\n"
                "sound with Griffin-Lim: it shows the training and restoration code at work,\n"
                "not VoiceFixer's quality.\n" + how)
            restored = restore_with_tiny_model(degraded, train_seconds, seed, quiet, train_steps)
            audio_io.write_audio(os.path.join(out_dir, "restored.wav"), restored, SAMPLE_RATE)
            signals[f"restored by a tiny VF-DNN trained {budget} on this clip, "
                    "Griffin-Lim (not VoiceFixer)"] = restored
        else:
            say(f"No converted weights at {weights_dir}: this demo only degrades the clip\n"
                "and measures the damage; it does not restore.\n" + how)
    plot_spectrograms(signals, os.path.join(out_dir, "spectrograms.png"))

    label = "restored" if weights_lib.is_weights_dir(weights_dir) else "restored (tiny model)"
    rows = [("degraded", degraded)] + ([(label, restored)] if restored is not None else [])
    table = ["| signal | SI-SDR (dB) | LSD |", "| --- | ---: | ---: |"]
    for name, x in rows:
        table.append(f"| {name} | {metrics.si_sdr(clean, x):.2f} | {metrics.lsd(clean, x):.3f} |")
    if restored is not None and not weights_lib.is_weights_dir(weights_dir):
        table.append("\nSI-SDR compares waveforms sample by sample; Griffin-Lim does not recover "
                     "the original phase, so for the tiny model only the LSD speaks.")
    table_text = "\n".join(table) + "\n"
    with open(os.path.join(out_dir, "metrics.md"), "w") as f:
        f.write("Against the clean clip:\n\n" + table_text)
    say("\n" + table_text)
    files = ["clean.wav", "degraded.wav"] + (["restored.wav"] if restored is not None else []) \
        + ["spectrograms.png", "metrics.md"]
    say(f"wrote {', '.join(files)} to {os.path.abspath(out_dir)}")
    return 0
