"""``python -m vf_jax restore``: a file, or a folder tree (batched, sharded,
resumable: :mod:`vf_jax.restoration.corpus`)."""

from __future__ import annotations

import os

from vf_jax.errors import UserError

PROG = "python -m vf_jax"
PLAN_BACKENDS = ("cpu", "gpu", "tpu")
HELP = "restore a file or a folder of files"


def add_arguments(p) -> None:
    from vf_jax.restoration import weights
    p.add_argument("-i", "--input", required=True, help="audio file or folder")
    p.add_argument("-o", "--output", default=None,
                   help="output file, or folder (the input tree mirrored; a folder run is "
                        "batched and resumable: run it again to go on); not with --plan")
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
    p.add_argument("--ladder", choices=("fine", "coarse", "auto"), default=None,
                   help="the row shapes windows are padded to: fine (26, little padding: "
                        "the CPU's for single files), coarse (3, few programs to compile: "
                        "the TPU's and GPU's) or auto (rungs of the fine one chosen for a "
                        "folder's lengths: a folder's default on a CPU); see docs/restoring.md")
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
    p.add_argument("--offline", action="store_true",
                   help="never download: without --weights and with no weights in the default "
                        "folder, stop with the command that fetches them (also VF_JAX_OFFLINE=1)")
    p.add_argument("--plan", action="store_true",
                   help="for a folder: the programs restoring it will compile (row shapes), "
                        "the files, audio and padding of each, and on a TPU the recorded "
                        "compile time and compute estimate; reads headers only, compiles "
                        "and writes nothing")
    p.add_argument("--backend", choices=PLAN_BACKENDS, default=None,
                   help="with --plan: the backend to plan for (default: this machine's)")
    p.add_argument("--json", action="store_true", help="with --plan: print the plan as JSON")


def main(args) -> int:
    from vf_jax.restoration import download, files
    from vf_jax.restoration.finish import check_finish
    if args.plan:
        return show_plan(args)
    if args.backend or args.json:
        raise UserError("--backend and --json go with --plan")
    if not args.output:
        raise UserError("-o/--output is required (except with --plan)")
    check_finish(args.strength, args.loudness)
    ext = "." + args.format
    if os.path.isdir(args.input):
        pairs = files.plan(args.input, args.output, args.overwrite, ext, check_existing=False)
        args.weights = download.ensure_weights(args.weights, args.offline, args.quiet)
        return restore_corpus(args, pairs)
    if args.shard or args.distributed:
        raise UserError("--shard and --distributed share a folder of inputs; the input is a file")
    pairs = files.plan(args.input, args.output, args.overwrite, ext)
    args.weights = download.ensure_weights(args.weights, args.offline, args.quiet)
    return restore_files(pairs, args.weights, mode=args.mode, seed=args.seed,
                         precision=args.precision, subtype=args.subtype, quiet=args.quiet,
                         output=args.output, strength=args.strength, loudness=args.loudness,
                         # A file is its own folder: "auto" gives it its own rung.
                         ladder=None if args.ladder == "auto" else args.ladder)


def restore_corpus(args, pairs) -> int:
    """A folder: batched, shared among processes, resumable (:mod:`vf_jax.restoration.corpus`)."""
    import jax

    from vf_jax.compilation import enable_compilation_cache
    from vf_jax.restoration import batched, corpus
    from vf_jax.restoration import plan as plan_lib
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
    ladder = args.ladder
    if plan_lib.folder_ladder(ladder, jax.default_backend()) == "auto":   # this share's headers
        inputs, _ = plan_lib.read_inputs(src for src, _ in shard.take(pairs))
        ladder = plan_lib.auto_ladder(inputs, args.batch_size or batched.default_batch_size())
    return corpus.run(pairs, args.input, args.output,
                      lambda: Restorer.from_folder(weights, precision=args.precision,
                                                   ladder=ladder),
                      settings=settings, shard=shard,
                      overwrite=args.overwrite, mode=args.mode, seed=args.seed,
                      strength=args.strength, loudness=args.loudness, subtype=args.subtype,
                      batch_size=args.batch_size, quiet=args.quiet, prog=PROG)


def restore_files(pairs, weights, *, mode: int, seed: int, precision: str, subtype: str,
                  quiet: bool, output: str, strength: float = 1.0,
                  loudness: str = "peak", ladder: str | None = None) -> int:
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
    restorer = Restorer.from_folder(weights, prepare=tuple(prepare), prepare_mode=mode,
                                    precision=precision, ladder=ladder)

    def job(pair, advance):
        src, dst = pair
        audio, sr = audio_io.read_audio(src)
        advance.read(audio.shape[0] / sr)     # the header may have guessed (compressed files)
        # Windows report the 44.1 kHz samples they newly cover.
        restored = restorer.restore(audio, sr, mode=mode, seed=seed,
                                    progress=lambda n: advance(round(n / SAMPLE_RATE, 2)),
                                    strength=strength, loudness=loudness)
        audio_io.write_audio(dst, restored, SAMPLE_RATE, subtype)

    return files.run(pairs, job, desc="restoring", quiet=quiet,
                     audio_seconds=durations, failed_prefix=f"{PROG} restore: ",
                     summary=lambda done, total: f"restored {done} of {total} file(s) -> {output}")


def show_plan(args) -> int:
    """``--plan``: what restoring the folder ``args.input`` would compile and
    compute (:mod:`vf_jax.restoration.plan`); 1 if a file cannot be read."""
    import json
    import sys

    import jax

    from vf_jax.audio import io as audio_io
    from vf_jax.restoration import batched
    from vf_jax.restoration import plan as plan_lib
    from vf_jax.restoration import weights as weights_lib
    if args.mode == 2:
        raise UserError("--plan covers modes 0 and 1 (mode 2 restores each file alone, "
                        "compiling for each length)")
    if not os.path.exists(args.input):
        raise UserError(f"input not found: {args.input}")
    if not os.path.isdir(args.input):
        raise UserError("--plan takes a folder (-i DIR)")
    rels = audio_io.find_audio_files(args.input)
    if not rels:
        raise UserError(f"no audio files in {args.input}")
    inputs, errors = plan_lib.read_inputs(os.path.join(args.input, rel) for rel in rels)
    for error in errors:
        print(f"skipped: {error}", file=sys.stderr)
    failed = len(errors)
    backend = args.backend or jax.default_backend()
    devices = jax.local_device_count() if backend == jax.default_backend() else 1
    rows = args.batch_size or batched.ROWS_PER_DEVICE[backend] * devices
    rows += -rows % devices
    weights = os.path.expanduser(args.weights or weights_lib.default_weights_dir())
    kind = (weights_lib.analysis_kind(weights_lib.load_meta(weights))
            if weights_lib.is_weights_dir(weights) else "released")
    result = plan_lib.plan_inputs(inputs, backend=backend, rows=rows, devices=devices,
                                  mode=args.mode, precision=args.precision, kind=kind,
                                  ladder=args.ladder)
    print(json.dumps(result, indent=1) if args.json else plan_lib.describe(result))
    if failed:
        print(f"{PROG} restore: {failed} file(s) cannot be read", file=sys.stderr)
    return 1 if failed else 0
