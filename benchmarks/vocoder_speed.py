"""Vocoder speed: training examples per second, and the folded generator
against the weight-normed one at inference, in one run.

Training (same batch of clean-speech crops on every side):
- vf_jax's generator-only step (the steps before ``discriminator_start``:
  generator forward and backward, multi-resolution STFT and mel losses, Adam,
  EMA);
- the same update on the original's PyTorch generator (``voicefixer``'s
  ``Generator``, weight-normed as it was trained), with the same losses written
  in PyTorch and the same Adam — the original publishes no training code, so
  this is the reference for the generator's share;
- vf_jax's whole GAN step (discriminator update, then the generator through
  the discriminators' adversarial and feature-matching losses).

Inference (features of ``--infer-seconds`` of audio): the published-size
generator with its weights folded (what the restorer runs) against the same
generator computing ``g v / ||v||`` in every call (its training form), and the
original's PyTorch generator with and without weight norm.

Usage: ``python benchmarks/vocoder_speed.py [--size published|tiny] [--batch 2]
[--crop 0.5] [--steps 3]`` (needs requirements-test.txt and
requirements-oracle.txt).
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import tempfile
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import record  # noqa: E402  (benchmarks/record.py)


def timed(fn, steps: int) -> float:
    fn()                                   # compile / warm up
    start = time.perf_counter()
    for _ in range(steps):
        fn()
    return (time.perf_counter() - start) / steps


def speech_batch(batch: int, samples: int) -> np.ndarray:
    """Crops of the shipped clip, one per example."""
    from vf_jax.commands import demo
    clip = demo.load_clip()
    hop = max(1, (len(clip) - samples) // max(batch, 1))
    return np.stack([clip[i * hop:i * hop + samples] for i in range(batch)]).astype(np.float32)


def torch_generator_step(config, speech: np.ndarray, feats: np.ndarray, frames: int):
    """The original generator and a closure doing one generator-only update
    with vf_jax's losses written in PyTorch."""
    import librosa
    import torch

    from vf_jax import original
    original.offline_home(pathlib.Path(tempfile.mkdtemp(prefix="vf_jax_bench_")) / "home")
    from voicefixer.vocoder.config import Config
    from voicefixer.vocoder.model.generator import Generator
    Config.refresh(44100)
    if config.generator.channels != 1024:
        Config.channels = config.generator.channels
        Config.cond_channels = config.generator.cond_channels
        Config.resstack_depth = [config.generator.resstack_depth] * 4
    torch.manual_seed(0)
    gen = Generator(Config.cin_channels).train()
    opt = torch.optim.Adam(gen.parameters(), lr=config.generator_learning_rate,
                           betas=(config.b1, config.b2))
    real = torch.from_numpy(speech)
    x = torch.from_numpy(np.ascontiguousarray(feats.transpose(0, 2, 1)))
    fb = torch.from_numpy(librosa.filters.mel(sr=44100, n_fft=2048, n_mels=128, fmin=0,
                                              fmax=22050, htk=True, norm=None).T.copy())
    lam = config.loss_weights

    def mag(y, n_fft, hop, win, floor):
        spec = torch.stft(y, n_fft, hop, win, window=torch.hann_window(win), center=True,
                          pad_mode="reflect", return_complex=True)
        return torch.sqrt(spec.real ** 2 + spec.imag ** 2 + floor)

    length = speech.shape[-1]
    produced = 441 * x.shape[-1]
    start = (produced - length) // 2

    def step():
        opt.zero_grad()
        fake = gen(x)[:, 0, start:start + length]
        sc = mg = 0.0
        for n_fft, hop, win in config.stft_resolutions:
            s, s_hat = mag(real, n_fft, hop, win, 1e-7), mag(fake, n_fft, hop, win, 1e-7)
            sc = sc + torch.linalg.norm(s - s_hat) / torch.linalg.norm(s)
            mg = mg + torch.mean(torch.abs(torch.log(s) - torch.log(s_hat)))
        n = len(config.stft_resolutions)
        mel = lambda y: torch.log10(torch.clamp(
            mag(y, 2048, 441, 2048, 0.0).transpose(1, 2) @ fb, min=1e-5))
        loss = (lam.sc * sc / n + lam.mag * mg / n
                + lam.mel * torch.mean(torch.abs(mel(real) - mel(fake))))
        loss.backward()
        opt.step()
    return gen, step


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", choices=("published", "tiny"), default="published",
                    help="generator and discriminators of configs/tfgan.py or tfgan_tiny.py")
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--crop", type=float, default=0.5, help="seconds per training example")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--infer-seconds", type=float, default=5.0)
    record.add_flag(ap)
    args = ap.parse_args()

    import jax
    import jax.numpy as jnp
    import torch

    from vf_jax import compilation, config_files
    from vf_jax.models import weight_norm
    from vf_jax.models.vocoder import TFGANGenerator
    from vf_jax.training.vocoder import step as vts

    config = config_files.get_config("tfgan" if args.size == "published" else "tfgan_tiny")
    speech = speech_batch(args.batch, int(round(args.crop * 44100)))
    feats, frames = jax.jit(vts.vocoder_input)(jnp.asarray(speech))
    feats = np.asarray(feats)
    batch = {"speech": jnp.asarray(speech)}
    options = compilation.compiler_options()

    # ------------------------------------------------------- training ---
    rows = []
    for name, adversarial in (("generator-only step", False),
                              ("GAN step (discriminators on)", True)):
        step = jax.jit(vts.make_step(config, adversarial=adversarial), donate_argnums=0,
                       compiler_options=options)
        holder = {"state": vts.init_state(config, jax.random.PRNGKey(0))}

        def run():
            holder["state"], m = step(holder["state"], batch)
            jax.block_until_ready(m["loss"])
        rows.append((f"vf_jax {name}", timed(run, args.steps)))
    gen_torch, torch_step = torch_generator_step(config, speech, feats, int(frames))
    rows.insert(1, ("original generator, PyTorch, generator-only step (same losses)",
                    timed(torch_step, args.steps)))

    # ------------------------------------------------------ inference ---
    g = config.generator
    sizes = dict(channels=g.channels, cond_channels=g.cond_channels,
                 resstack_depth=g.resstack_depth)
    infer_frames = int(args.infer_seconds * 100)
    x = jax.random.uniform(jax.random.PRNGKey(1), (1, infer_frames, 128), minval=-4, maxval=0)
    unfolded = vts.init_state(config, jax.random.PRNGKey(0)).generator
    folded = weight_norm.fold(unfolded)
    plain = jax.jit(lambda p, f: TFGANGenerator(**sizes).apply({"params": p}, f),
                    compiler_options=options)
    normed = jax.jit(lambda p, f: TFGANGenerator(weight_norm=True, **sizes).apply(
        {"params": p}, f), compiler_options=options)
    t_folded = timed(lambda: jax.block_until_ready(plain(folded, x)), args.steps)
    t_unfolded = timed(lambda: jax.block_until_ready(normed(unfolded, x)), args.steps)
    xt = torch.from_numpy(np.asarray(x).transpose(0, 2, 1).copy())
    gen_torch.eval()
    with torch.no_grad():
        t_torch_wn = timed(lambda: gen_torch(xt), args.steps)
        for m in gen_torch.modules():
            if torch.nn.utils.parametrize.is_parametrized(m, "weight"):
                torch.nn.utils.parametrize.remove_parametrizations(m, "weight")
        t_torch_plain = timed(lambda: gen_torch(xt), args.steps)

    with record.results("vocoder_speed", args.record):
        print(f"\njax {jax.__version__} on {jax.devices()[0].platform}; torch {torch.__version__} "
              f"({torch.get_num_threads()} threads); {args.size} generator "
              f"({weight_norm.param_count(folded):,} parameters); training batch {args.batch} x "
              f"{args.crop:g} s\n")
        print("| training | seconds/step | examples/s |")
        print("| --- | ---: | ---: |")
        for name, sec in rows:
            print(f"| {name} | {sec:.3f} | {args.batch / sec:.2f} |")
        print(f"| ratio vf_jax / original, generator-only (examples/s) | | "
              f"{rows[1][1] / rows[0][1]:.2f} |")
        print(f"\n| inference, {args.infer_seconds:g} s of audio | seconds | x real time |")
        print("| --- | ---: | ---: |")
        for name, sec in (("vf_jax folded (restorer)", t_folded),
                          ("vf_jax weight-normed (training form)", t_unfolded),
                          ("original, weight norm removed", t_torch_plain),
                          ("original, weight-normed", t_torch_wn)):
            print(f"| {name} | {sec:.3f} | {args.infer_seconds / sec:.1f} |")
        print(f"| ratio weight-normed / folded time, vf_jax | {t_unfolded / t_folded:.3f} | |")
        print(f"| ratio original / vf_jax time, folded | {t_torch_plain / t_folded:.2f} | |")


if __name__ == "__main__":
    main()
