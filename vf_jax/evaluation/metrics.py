"""Restoration metrics, following the original evaluation code's conventions
(voicefixer_main ``evaluation/metrics.py``; ``docs/voicefixer.md``, "Evaluation").

Both signals are mono at the reference's rate, cut to the shorter, and taken
at their own levels (no level normalisation, as the original). Spectral
metrics use STFT magnitudes with a Hann window, centred frames and reflect
padding (librosa 0.8, which the original ran): n_fft 2048, hop 441 at 44.1
kHz (mel: 128 HTK bands, no area normalisation, as torchaudio's
``MelScale``); n_fft 743, hop 160, 80 mels at 16 kHz (torchaudio places the
bins at ``linspace(0, 8000, 372)``, as :func:`vf_jax.audio.mel.mel_filterbank`
does, not at the odd FFT's true frequencies). Other rates are resampled to
44.1 kHz for these metrics. ``EPS`` = 1e-8 throughout, where the original
puts it.

- LSD: ``mean_t sqrt(mean_f log10((S² + eps)/(Ŝ² + eps))²)`` on magnitudes.
  The original writes ``log10(S²/(Ŝ² + eps) + eps)``: the same wherever
  ``S² >> eps``, but -8 in bins silent in both, so that identical signals with
  digital silence scored an LSD of several units; here they score 0.
- SiSPNR (the original's ``sispec``): project the estimate onto the reference,
  ``t = <ŝ, s>/(|s|² + eps) s``; ``10 log10(|t|²/(|ŝ - t|² + eps) + eps)`` over
  the whole spectrogram, on ``log10(max(S, eps))`` (the original's
  ``sispec``, which the paper reports; its non-log variant is left out).
- SSIM: scikit-image's ``structural_similarity`` on the magnitude
  spectrograms, window 7, ``data_range`` 2 (what scikit-image assumed for float
  images when the original ran).
- SI-SDR: ``10 log10(|a s|² / |a s - ŝ|²)`` with ``a = <ŝ, s> / |s|²``, zero
  means removed; infinite for a perfect match, NaN for a silent reference.
- PESQ: wide band (ITU-T P.862.2, the ``pesq`` package), both resampled to
  16 kHz. STOI: ``pystoi`` at the signals' rate (it resamples to 10 kHz).
- DNSMOS (no reference): Microsoft's DNSMOS P.835 models shipped with
  ``speechmos`` (offline), on the estimate at 16 kHz: SIG, BAK, OVRL and P.808.
- mel LSD (training's validation, which has no waveform): the LSD on mel
  magnitudes ``M`` as ``log10(M²) = 2 log10 M`` over the valid frames.

LSD, SiSPNR and SI-SDR exist in NumPy (float64, the reference) and jnp
(``*_jax``, jittable, for validation inside training).
Every function with a reference takes ``(reference, estimate)``, in that order.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from vf_jax.audio import stft as stft_lib
from vf_jax.audio.io import SAMPLE_RATE


def log_spectral_distance(log_power_ref, log_power_est, valid=None):
    """LSD from log10 powers ``(..., frames, bins)``: the mean over frames of
    the RMS over bins of the difference, ``(...)``. ``valid`` ``(...)``: frames
    that count (the rest are padding); all when None. jnp, jittable."""
    per_frame = jnp.sqrt(jnp.mean((log_power_ref - log_power_est) ** 2, axis=-1))
    if valid is None:
        return jnp.mean(per_frame, axis=-1)
    mask = jnp.arange(per_frame.shape[-1]) < jnp.asarray(valid)[..., None]
    return jnp.sum(per_frame * mask, axis=-1) / jnp.maximum(jnp.sum(mask, axis=-1), 1)


def mel_lsd(log_mel_ref, log_mel_est, valid=None):
    """LSD on log10 mel magnitudes ``(..., frames, mels)`` -> ``(...)``."""
    return log_spectral_distance(2.0 * log_mel_ref, 2.0 * log_mel_est, valid)


EPS = 1e-8
SPECTRAL_SETTINGS = {44100: (2048, 441, 128), 16000: (743, 160, 80)}   # n_fft, hop, mels


# ------------------------------------------------------------ spectra ---

def spectrograms(wav: np.ndarray, rate: int) -> tuple[np.ndarray, np.ndarray]:
    """Magnitude spectrogram ``(frames, n_fft // 2 + 1)`` and mel
    ``(frames, mels)``, float64, with the settings of ``rate`` (44.1 or 16 kHz)."""
    from vf_jax.audio import mel as mel_lib
    n_fft, hop, n_mels = SPECTRAL_SETTINGS[rate]
    frames = 1 + (len(wav) + 2 * (n_fft // 2) - n_fft) // hop    # librosa's, odd n_fft too
    spec = np.asarray(stft_lib.stft(np.asarray(wav, np.float32), n_fft, hop, frames))
    mag = np.abs(spec).astype(np.float64)
    return mag, mag @ mel_lib.mel_filterbank(rate, n_fft, n_mels).astype(np.float64)


def to_log(x):
    return np.log10(np.maximum(x, EPS))


def lsd_spectra(reference: np.ndarray, estimate: np.ndarray) -> float:
    """LSD of magnitude spectrograms ``(frames, bins)`` (module docstring)."""
    est, ref = np.asarray(estimate, np.float64), np.asarray(reference, np.float64)
    per_bin = np.log10((ref ** 2 + EPS) / (est ** 2 + EPS)) ** 2
    return float(np.mean(np.sqrt(np.mean(per_bin, axis=-1))))


def lsd_spectra_jax(reference, estimate):
    """:func:`lsd_spectra` in jnp, over leading batch axes: ``(..., T, F) -> (...)``."""
    per_bin = jnp.log10((reference ** 2 + EPS) / (estimate ** 2 + EPS)) ** 2
    return jnp.mean(jnp.sqrt(jnp.mean(per_bin, axis=-1)), axis=-1)


def sispnr(reference: np.ndarray, estimate: np.ndarray) -> float:
    """Scale-invariant spectrogram-to-noise ratio in dB (module docstring)."""
    est, ref = np.asarray(estimate, np.float64), np.asarray(reference, np.float64)
    target = np.sum(est * ref) / (np.sum(ref * ref) + EPS) * ref
    noise = est - target
    return float(10 * np.log10(np.sum(target ** 2) / (np.sum(noise ** 2) + EPS) + EPS))


def sispnr_jax(reference, estimate):
    """:func:`sispnr` in jnp over leading batch axes: ``(..., T, F) -> (...)``."""
    axes = (-2, -1)
    scale = (jnp.sum(estimate * reference, axis=axes, keepdims=True)
             / (jnp.sum(reference * reference, axis=axes, keepdims=True) + EPS))
    target = scale * reference
    noise = estimate - target
    return 10 * jnp.log10(jnp.sum(target ** 2, axis=axes)
                          / (jnp.sum(noise ** 2, axis=axes) + EPS) + EPS)


def ssim(reference: np.ndarray, estimate: np.ndarray) -> float:
    """Structural similarity of two spectrograms (scikit-image, window 7, data
    range 2, as the original)."""
    from skimage.metrics import structural_similarity
    return float(structural_similarity(np.asarray(estimate, np.float64),
                                       np.asarray(reference, np.float64),
                                       win_size=7, data_range=2.0))


def lsd(reference: np.ndarray, estimate: np.ndarray, rate: int = SAMPLE_RATE) -> float:
    """LSD of two waveforms at ``rate`` (aligned to the shorter)."""
    n = min(len(reference), len(estimate))
    return lsd_spectra(spectrograms(reference[:n], rate)[0], spectrograms(estimate[:n], rate)[0])


# ----------------------------------------------------------- waveform ---

def si_sdr(reference: np.ndarray, estimate: np.ndarray) -> float:
    n = min(len(reference), len(estimate))
    s = np.asarray(reference[:n], np.float64)
    e = np.asarray(estimate[:n], np.float64)
    s, e = s - s.mean(), e - e.mean()
    energy = np.dot(s, s)
    if energy == 0.0:
        return float("nan")
    target = np.dot(e, s) / energy * s
    noise = e - target
    noise_energy = np.dot(noise, noise)
    if noise_energy == 0.0:
        return float("inf")
    return float(10.0 * np.log10(np.dot(target, target) / noise_energy))


def si_sdr_jax(reference, estimate):
    """:func:`si_sdr` in jnp over leading batch axes, ``(..., samples) -> (...)``
    (inf for a perfect match, NaN for a silent reference, as the NumPy one)."""
    s = reference - jnp.mean(reference, axis=-1, keepdims=True)
    e = estimate - jnp.mean(estimate, axis=-1, keepdims=True)
    energy = jnp.sum(s * s, axis=-1, keepdims=True)
    target = jnp.sum(e * s, axis=-1, keepdims=True) / energy * s
    noise = e - target
    return 10.0 * jnp.log10(jnp.sum(target ** 2, axis=-1) / jnp.sum(noise ** 2, axis=-1))


def pesq_wb(reference: np.ndarray, estimate: np.ndarray, rate: int) -> float:
    """Wide-band PESQ at 16 kHz; NaN when PESQ finds no speech."""
    from pesq import pesq

    from vf_jax.audio import io as audio_io
    ref = audio_io.resample(np.asarray(reference, np.float32)[:, None], rate, 16000)[:, 0]
    est = audio_io.resample(np.asarray(estimate, np.float32)[:, None], rate, 16000)[:, 0]
    n = min(len(ref), len(est))
    try:
        return float(pesq(16000, ref[:n].astype(np.float64), est[:n].astype(np.float64), "wb"))
    except Exception:   # "No utterances detected" and the like: undefined here
        return float("nan")


def stoi(reference: np.ndarray, estimate: np.ndarray, rate: int) -> float:
    from pystoi import stoi as pystoi_stoi
    n = min(len(reference), len(estimate))
    return float(pystoi_stoi(np.asarray(reference[:n], np.float64),
                             np.asarray(estimate[:n], np.float64), rate, extended=False))


def dnsmos(estimate: np.ndarray, rate: int) -> dict[str, float]:
    """DNSMOS P.835 (SIG, BAK, OVRL) and P.808 of the estimate alone."""
    from speechmos import dnsmos as dnsmos_lib

    from vf_jax.audio import io as audio_io
    x = audio_io.resample(np.asarray(estimate, np.float32)[:, None], rate, 16000)[:, 0]
    peak = float(np.max(np.abs(x))) if x.size else 0.0
    if peak > 1.0:      # the models expect [-1, 1]
        x = x / peak
    scores = dnsmos_lib.run(x.astype(np.float64), sr=16000)
    return {"dnsmos_" + k.replace("_mos", ""): float(scores[k])
            for k in ("sig_mos", "bak_mos", "ovrl_mos", "p808_mos")}


# -------------------------------------------------------------- all ---

def all_metrics(reference: np.ndarray, estimate: np.ndarray, rate: int,
                with_dnsmos: bool = True) -> dict[str, float]:
    """Every metric of one pair of mono signals at ``rate``, aligned to the
    shorter. A silent reference leaves the reference-based metrics NaN."""
    from vf_jax.audio import io as audio_io
    n = min(len(reference), len(estimate))
    ref = np.asarray(reference[:n], np.float32)
    est = np.asarray(estimate[:n], np.float32)
    out = {}
    silent = not np.any(ref)
    spectral_rate = rate if rate in SPECTRAL_SETTINGS else SAMPLE_RATE
    if spectral_rate != rate:
        ref_s = audio_io.resample(ref[:, None], rate, spectral_rate)[:, 0]
        est_s = audio_io.resample(est[:, None], rate, spectral_rate)[:, 0]
    else:
        ref_s, est_s = ref, est
    ref_mag, ref_mel = spectrograms(ref_s, spectral_rate)
    est_mag, est_mel = spectrograms(est_s, spectral_rate)
    nan = float("nan")
    out["lsd"] = nan if silent else lsd_spectra(ref_mag, est_mag)
    out["lsd_mel"] = nan if silent else lsd_spectra(ref_mel, est_mel)
    out["sispnr"] = nan if silent else sispnr(to_log(ref_mag), to_log(est_mag))
    out["sispnr_mel"] = nan if silent else sispnr(to_log(ref_mel), to_log(est_mel))
    out["ssim"] = nan if silent else ssim(ref_mag, est_mag)
    out["ssim_mel"] = nan if silent else ssim(ref_mel, est_mel)
    out["si_sdr"] = si_sdr(ref, est)
    out["pesq_wb"] = nan if silent else pesq_wb(ref, est, rate)
    out["stoi"] = nan if silent else stoi(ref, est, rate)
    if with_dnsmos:
        out.update(dnsmos(est, rate))
    return out
