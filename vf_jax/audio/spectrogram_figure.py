"""Log-mel spectrograms of 44.1 kHz signals as one figure (a PNG file): the
demo's before/after panels and the restoration page's input/output pair."""

from __future__ import annotations

import numpy as np

from vf_jax.audio.io import SAMPLE_RATE


def plot_spectrograms(signals: dict[str, np.ndarray], path: str,
                      side_by_side: bool = False, dpi: int = 90) -> None:
    """Write one panel per ``{title: (samples,) at 44.1 kHz}`` to ``path``:
    stacked with a shared time axis, or ``side_by_side`` in one row."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from vf_jax.audio import mel as mel_lib
    fe = mel_lib.FRONT_ENDS[SAMPLE_RATE]
    n = len(signals)
    shape, size = ((1, n), (4.6 * n, 3.2)) if side_by_side else ((n, 1), (10, 2.6 * n))
    fig, axes = plt.subplots(*shape, figsize=size, sharex=not side_by_side,
                             squeeze=False)
    axes = axes.ravel()
    for ax, (name, x) in zip(axes, signals.items()):
        mel, _ = mel_lib.mel_spectrogram(np.asarray(x, np.float32), fe)
        im = ax.imshow(np.asarray(mel_lib.to_log(mel)).T, origin="lower", aspect="auto",
                       vmin=-5, vmax=2, cmap="magma",
                       extent=(0, len(x) / SAMPLE_RATE, 0, fe.n_mels))
        ax.set_title(name)
    for ax in axes if side_by_side else axes[-1:]:
        ax.set_xlabel("time (s)")
    for ax in axes[:1] if side_by_side else axes:
        ax.set_ylabel("mel band")
    fig.colorbar(im, ax=axes.tolist(), label="log10 mel magnitude")
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    plt.close(fig)
