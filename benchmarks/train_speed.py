"""Analysis training speed: the VF-UNet update step in vf_jax against the
original PyTorch ResUNet (``voicefixer``'s ``UNetResComplex_100Mb``, one input
channel) doing the same step on the same batch, in one run.

Same work on both sides: log10 mel in, ResUNet with batch statistics, the log
residual, mean L1 against the clean log10 mel, backward, Adam with AMSGrad and
betas (0.5, 0.999). The mels come from 3 s crops degraded by the GSR pipeline.
Also timed: vf_jax's whole step (degradations and front end on device too).

Usage: ``python benchmarks/train_speed.py [--batch 4] [--steps 3] [--seconds 3]``
(needs requirements-test.txt and requirements-oracle.txt).
"""

from __future__ import annotations

import argparse
import pathlib
import sys
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=3.0)
    record.add_flag(ap)
    args = ap.parse_args()

    import jax
    import jax.numpy as jnp
    import torch

    from vf_jax import config_files
    from vf_jax.audio.synthetic import training_batch
    from vf_jax.training import parallel
    from vf_jax.training.analysis import step as ts

    config = config_files.get_config("resunet")
    config.crop_seconds = args.seconds
    batch = training_batch(args.batch, args.seconds)
    keys = jax.random.split(jax.random.PRNGKey(0), args.batch)
    mel_in, mel_clean, valid = jax.jit(ts.make_features(config))(batch, keys)
    mel_in, mel_clean = np.asarray(mel_in), np.asarray(mel_clean)
    valid = np.full(args.batch, mel_in.shape[1], np.int32)   # every frame, as torch's mean

    # vf_jax: the network's update alone, and the whole step.
    from vf_jax import compilation
    update = jax.jit(ts.make_update(config), donate_argnums=0,
                     compiler_options=compilation.compiler_options())
    holder = {"state": ts.init_state(config, jax.random.PRNGKey(0))}
    dev = [jnp.asarray(a) for a in (mel_in, mel_clean, valid)]

    def jax_update():
        holder["state"], m = update(holder["state"], *dev, jax.random.PRNGKey(1))
        jax.block_until_ready(m["loss"])
    ours = timed(jax_update, args.steps)

    mesh = parallel.make_mesh(jax.devices()[:1])
    step = ts.jit_step(config, mesh)
    gbatch = parallel.global_batch(batch, mesh)

    holder["state"] = parallel.place_replicated(holder["state"], mesh)

    def jax_step():
        holder["state"], m = step(holder["state"], gbatch)
        jax.block_until_ready(m["loss"])
    ours_full = timed(jax_step, args.steps)

    # The original's network in PyTorch (imported offline: placeholder weights).
    import tempfile

    from vf_jax import original
    original.offline_home(pathlib.Path(tempfile.mkdtemp(prefix="vf_jax_bench_")) / "home")
    from voicefixer.restorer.model_kqq_bn import UNetResComplex_100Mb
    torch.manual_seed(0)
    net = UNetResComplex_100Mb(channels=1).train()
    opt = torch.optim.Adam(net.parameters(), lr=config.learning_rate,
                           betas=(config.b1, config.b2), amsgrad=True)
    x = torch.log10(torch.clamp(torch.from_numpy(mel_in), min=1e-8))[:, None]
    target = torch.log10(torch.clamp(torch.from_numpy(mel_clean), min=1e-8))[:, None]

    def torch_step():
        opt.zero_grad()
        loss = torch.mean(torch.abs(net(x)["mel"] + x - target))
        loss.backward()
        opt.step()
    theirs = timed(torch_step, args.steps)

    with record.results("train_speed", args.record):
        print(f"\njax {jax.__version__} on {jax.devices()[0].platform}; torch {torch.__version__} "
              f"({torch.get_num_threads()} threads); batch {args.batch} x {args.seconds:g} s "
              f"({mel_in.shape[1]} frames)\n")
        print("| step | seconds | examples/s |")
        print("| --- | ---: | ---: |")
        print(f"| vf_jax VF-UNet update | {ours:.2f} | {args.batch / ours:.2f} |")
        print(f"| vf_jax whole step (with degradations and front end) | {ours_full:.2f} | "
              f"{args.batch / ours_full:.2f} |")
        print(f"| original ResUNet, PyTorch | {theirs:.2f} | {args.batch / theirs:.2f} |")
        print(f"| ratio vf_jax update / original (examples/s) | | {theirs / ours:.2f} |")


if __name__ == "__main__":
    main()
