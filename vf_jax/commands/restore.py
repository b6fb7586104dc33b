"""``python -m vf_jax restore``: a file, or a folder tree (batched, sharded,
resumable: :mod:`vf_jax.restoration.corpus`)."""

from __future__ import annotations

import os

from vf_jax.errors import UserError

PROG = "python -m vf_jax"
HELP = "restore a file or a folder of files"


def add_arguments(p) -> None:
    from vf_jax.restoration import weights
    p.add_argument("-i", "--input", required=True, help="audio file or folder")
    p.add_argument("-o", "--output", required=True,
                   help="output file, or folder (the input tree mirrored; a folder run is "
                        "batched and resumable: run it again to go on)")
    p.add_argument("--weights", default=None,
                   help="weights folder (default: $VF_JAX_WEIGHTS or "
                        f"{weights.default_weights_dir()})")
    p.add_argument("--mode", type=int, choices=(0, 1, 2), default=0,
                   help="0: plain; 1: remove content above the 95%% energy bin first; "
                        "2: batch statistics and dropout (for severe damage)")
    p.add_argument("--precision", choices=("float32", "bf16"), default="float32",
                   help="the networks' arithmetic: float32, or bf16 (bfloat16: faster on "
                        "TPUs and recent GPUs; error against float32 in docs/restoring.md)")
    p.add_argument("--format", choices=("wav", "flac"), default="wav",
                   help="the outputs' format, for a folder (a file output: its extension)")
    p.add_argument("--subtype", default="PCM_16",
                   help="output subtype (PCM_16, PCM_24, FLOAT, ...)")
    p.add_argument("--strength", type=float, default=1.0,
                   help="0-1: the restoration mixed with the input (1: restoration only)")
    p.add_argument("--loudness", choices=("peak", "input"), default="peak",
                   help="peak: the original's rule (scale down only past full scale); "
                        "input: the input's loudness (ITU-R BS.1770)")
    p.add_argument("--batch-size", type=int, default=None,
                   help="windows per device batch for a folder (default: per backend)")
    p.add_argument("--shard", default=None,
                   help="I/N: restore every N-th file from the I-th (one of N jobs)")
    p.add_argument("--distributed", action="store_true",
                   help="share the folder among the hosts of jax.distributed (TPU pods, SLURM)")
    p.add_argument("--coordinator", default=None, help="with --distributed: host:port of process 0")
    p.add_argument("--num-processes", type=int, default=None)
    p.add_argument("--process-id", type=int, default=None)
    p.add_argument("--seed", type=int, default=0, help="dropout seed for mode 2")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def main(args) -> int:
    from vf_jax.restoration import files
    from vf_jax.restoration.finish import check_finish
    check_finish(args.strength, args.loudness)
    ext = "." + args.format
    if os.path.isdir(args.input):
        return restore_corpus(args, files.plan(args.input, args.output, args.overwrite, ext,
                                               check_existing=False))
    if args.shard or args.distributed:
        raise UserError("--shard and --distributed share a folder of inputs; the input is a file")
    pairs = files.plan(args.input, args.output, args.overwrite, ext)
    return restore_files(pairs, args.weights, mode=args.mode, seed=args.seed,
                         precision=args.precision, subtype=args.subtype, quiet=args.quiet,
                         output=args.output, strength=args.strength, loudness=args.loudness)


def restore_corpus(args, pairs) -> int:
    """A folder: batched, shared among processes, resumable (:mod:`vf_jax.restoration.corpus`)."""
    import jax

    from vf_jax.compilation import enable_compilation_cache
    from vf_jax.restoration import corpus
    from vf_jax.restoration import weights as weights_lib
    from vf_jax.restoration.restorer import Restorer
    shard = corpus.Shard.parse(args.shard) if args.shard else corpus.Shard()
    if args.distributed:
        if args.shard:
            raise UserError("use --shard or --distributed, not both")
        kwargs = {}
        if args.coordinator:
            kwargs = dict(coordinator_address=args.coordinator,
                          num_processes=args.num_processes, process_id=args.process_id)
        jax.distributed.initialize(**kwargs)
        shard = corpus.Shard(jax.process_index(), jax.process_count())
    weights = os.path.expanduser(args.weights or weights_lib.default_weights_dir())
    settings = {"weights": corpus.weights_identity(weights), "mode": args.mode,
                "seed": args.seed if args.mode == 2 else None, "precision": args.precision,
                "strength": args.strength, "loudness": args.loudness, "format": args.format,
                "subtype": args.subtype}
    enable_compilation_cache()
    return corpus.run(pairs, args.input, args.output,
                      lambda: Restorer.from_folder(weights, precision=args.precision),
                      settings=settings, shard=shard,
                      overwrite=args.overwrite, mode=args.mode, seed=args.seed,
                      strength=args.strength, loudness=args.loudness, subtype=args.subtype,
                      batch_size=args.batch_size, quiet=args.quiet, prog=PROG)


def restore_files(pairs, weights, *, mode: int, seed: int, precision: str, subtype: str,
                  quiet: bool, output: str, strength: float = 1.0,
                  loudness: str = "peak") -> int:
    """Restore ``(input, output)`` pairs (:func:`vf_jax.restoration.files.plan`)
    with the weights folder ``weights``; returns the exit status."""
    from vf_jax.audio import io as audio_io
    from vf_jax.audio.io import SAMPLE_RATE
    from vf_jax.compilation import enable_compilation_cache
    from vf_jax.restoration import files
    from vf_jax.restoration.restorer import Restorer
    enable_compilation_cache()
    # Read lazily, but know the total duration for the progress bar, and
    # compile for the first file while the weights are read.
    durations, prepare = [], []
    for path, _ in pairs:
        seconds, frames, rate, channels = files.audio_info(path)
        durations.append(seconds)
        if not prepare and mode != 2 and frames > 0:
            prepare.append((round(frames * SAMPLE_RATE / rate), channels))
    restorer = Restorer.from_folder(weights, prepare=tuple(prepare), precision=precision)

    def job(pair, advance):
        src, dst = pair
        audio, sr = audio_io.read_audio(src)
        # Windows report the 44.1 kHz samples they newly cover.
        restored = restorer.restore(audio, sr, mode=mode, seed=seed,
                                    progress=lambda n: advance(round(n / SAMPLE_RATE, 2)),
                                    strength=strength, loudness=loudness)
        audio_io.write_audio(dst, restored, SAMPLE_RATE, subtype)

    return files.run(pairs, job, desc="restoring", quiet=quiet,
                     audio_seconds=sum(durations), failed_prefix=f"{PROG} restore: ",
                     summary=lambda done, total: f"restored {done} of {total} file(s) -> {output}")
