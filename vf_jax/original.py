"""The original ``voicefixer`` 0.1.3 package (PyTorch) with seeded random weights:
the reference the tests and the side-by-side benchmarks compare against.

Nothing in the library imports this module, and it imports ``torch`` and
``voicefixer`` only inside its functions (requirements-oracle.txt installs them).

The package downloads its weights at import unless the files exist under
``~/.cache/voicefixer``; :func:`make_oracle` points ``HOME`` at a temporary folder
and writes real checkpoints there (random weights, BatchNorm statistics
randomised so eval mode is not the identity), in the published layouts:
``vf.ckpt`` as a plain state dict with ``generator.*`` keys, the vocoder under
``"generator"`` with legacy ``weight_g``/``weight_v`` keys.
"""

from __future__ import annotations

import contextlib
import os
import pathlib

import numpy as np

VF_REL = ".cache/voicefixer/analysis_module/checkpoints/vf.ckpt"
VOC_REL = ".cache/voicefixer/synthesis_module/44100/model.ckpt-1490000_trimed.pt"


def legacy_weight_norm_keys(state):
    """torch >= 2.1 parametrization keys -> the published ``weight_g``/``weight_v``."""
    out = {}
    for k, v in state.items():
        k = k.replace(".parametrizations.weight.original0", ".weight_g")
        k = k.replace(".parametrizations.weight.original1", ".weight_v")
        out[k] = v
    return out


def randomise_batchnorm(module, gen):
    import torch
    for m in module.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            n = m.num_features
            with torch.no_grad():
                m.running_mean.copy_(torch.rand(n, generator=gen) - 0.5)
                m.running_var.copy_(0.5 + torch.rand(n, generator=gen))
                m.weight.copy_(0.8 + 0.4 * torch.rand(n, generator=gen))
                m.bias.copy_(0.2 * torch.rand(n, generator=gen) - 0.1)


def offline_home(home: pathlib.Path):
    """Point HOME at ``home`` with placeholder checkpoints, so that importing
    the ``voicefixer`` package downloads nothing. Returns the two paths."""
    import torch
    home = pathlib.Path(home)
    os.environ["HOME"] = str(home)
    vf_path, voc_path = home / VF_REL, home / VOC_REL
    vf_path.parent.mkdir(parents=True, exist_ok=True)
    voc_path.parent.mkdir(parents=True, exist_ok=True)
    if not vf_path.exists():
        torch.save({}, vf_path)
        torch.save({"generator": {}}, voc_path)
    return vf_path, voc_path


def make_oracle(home: pathlib.Path, seed: int = 0):
    """Write random checkpoints under ``home`` and return the original restorer
    (``voicefixer.VoiceFixer``) that loaded them, plus the two file paths."""
    import torch
    vf_path, voc_path = offline_home(home)

    from voicefixer.restorer.model import Generator as AnalysisGenerator
    from voicefixer.vocoder.config import Config
    from voicefixer.vocoder.model.generator import Generator as VocoderGenerator

    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed + 1)
    analysis = AnalysisGenerator(128, 1025, 2)
    randomise_batchnorm(analysis, gen)
    state = {f"generator.{k}": v for k, v in analysis.state_dict().items()}
    torch.save(state, vf_path)

    Config.refresh(44100)
    vocoder = VocoderGenerator(Config.cin_channels)
    torch.save({"generator": legacy_weight_norm_keys(vocoder.state_dict())}, voc_path)

    from voicefixer import VoiceFixer
    original = VoiceFixer()
    return original, str(vf_path), str(voc_path)


@contextlib.contextmanager
def batch_statistics_without_dropout(model):
    """The original's mode 2 (training mode) with dropout off and the running
    statistics frozen (momentum 0); everything restored afterwards."""
    import torch
    momenta = {m: m.momentum for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)}
    model.train()
    for m in model.modules():
        if isinstance(m, torch.nn.Dropout):
            m.eval()
    for m in momenta:
        m.momentum = 0.0
    try:
        yield model
    finally:
        for m, momentum in momenta.items():
            m.momentum = momentum
        model.eval()


def original_log_mel(original, wav: np.ndarray, train: bool = False):
    """The original's restored log10 mel ``(T, 128)`` and its input mel, for a
    mono 44.1 kHz clip; ``train``: mode 2 without dropout."""
    import torch
    model = original._model
    context = batch_statistics_without_dropout(model) if train else contextlib.nullcontext()
    with torch.no_grad(), context:
        sp, mel = original._pre(model, wav.astype(np.float32), cuda=False)
        out = model(sp, mel)["mel"]
    return out[0, 0].numpy(), mel[0, 0].numpy()
