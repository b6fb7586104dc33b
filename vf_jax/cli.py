"""Command line: ``python -m vf_jax {restore,convert,degrade,demo,evaluate} ...``.

Every failure the user can cause ends with one line on stderr and a non-zero
exit (1: the job failed, 2: bad arguments); no tracebacks unless
``VF_JAX_DEBUG=1``.
"""

from __future__ import annotations

import argparse
import os
import sys

from vf_jax.errors import UserError, run_guarded

PROG = "python -m vf_jax"


def _quiet_libraries():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        import absl.logging
        absl.logging.set_verbosity(absl.logging.ERROR)
    except ImportError:
        pass
    import logging
    logging.getLogger("jax").setLevel(logging.ERROR)


# -------------------------------------------------------------- restore ---

def cmd_restore(args) -> int:
    from vf_jax.restoration import files
    from vf_jax.restoration.restore import check_finish
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
    from vf_jax.restoration.restore import Restorer
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
    from vf_jax.restoration.restore import Restorer
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


# -------------------------------------------------------------- convert ---

def cmd_convert(args) -> int:
    from vf_jax.restoration import convert, weights
    variables, report, provenance = convert.convert(args.analysis, args.vocoder)
    meta = weights.describe("released", provenance, report)
    weights.save(args.out, variables, meta, overwrite=args.overwrite)
    for line in report:
        print(line, file=sys.stderr)
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


# --------------------------------------------------------------- export ---

def cmd_export(args) -> int:
    from vf_jax.training import export
    meta = export.export(args.analysis_workdir, args.vocoder_workdir, args.out,
                         args.checkpoint, args.overwrite)
    print(f"wrote {args.out} ({meta['notes'][0]})", file=sys.stderr)
    return 0


# -------------------------------------------------------------- degrade ---

def cmd_degrade(args) -> int:
    from vf_jax.commands import degrade as degrade_files
    from vf_jax.restoration import files
    pairs = files.plan(args.input, args.output, args.overwrite)
    jobs = []
    for src, dst in pairs:
        rel = (os.path.relpath(src, args.input) if os.path.isdir(args.input)
               else os.path.basename(src))
        target = None
        if args.target is not None:
            target = (os.path.join(args.target, files.output_name(rel))
                      if os.path.isdir(args.input)
                      else args.target)
            if os.path.exists(target) and not args.overwrite:
                raise UserError(f"output exists: {target} (use --overwrite to replace)")
            if os.path.abspath(target) in {os.path.abspath(s) for s, _ in pairs}:
                raise UserError(f"target {target} would overwrite an input file")
        jobs.append((src, rel, dst, target))
    from vf_jax.compilation import enable_compilation_cache
    enable_compilation_cache()
    return degrade_files.run(jobs, args.preset, args.seed, args.noise, args.rir,
                             args.subtype, args.quiet, args.output)


# ----------------------------------------------------------------- demo ---

def cmd_demo(args) -> int:
    from vf_jax.commands import demo
    from vf_jax.compilation import enable_compilation_cache
    enable_compilation_cache()
    if not args.train_seconds >= 0:
        raise UserError("--train-seconds must be 0 or more")
    if args.train_steps is not None and args.train_steps < 1:
        raise UserError("--train-steps must be 1 or more")
    return demo.run(args.out, args.weights, seed=args.seed, quiet=args.quiet,
                    train_seconds=args.train_seconds, train_steps=args.train_steps)


# ------------------------------------------------------------- evaluate ---

def cmd_evaluate(args) -> int:
    from vf_jax.evaluation import evaluate
    if args.workers < 0:
        raise UserError("--workers must be 0 (automatic) or more")
    if args.testset is not None and args.pairs is not None:
        raise UserError("give --testset or --pairs, not both")
    for flag, kind in (("--testset", "testset"), ("--pairs", "paired")):
        folder = getattr(args, flag[2:])
        if folder is None:
            continue
        if args.ref is not None or args.input is not None:
            raise UserError(f"{flag} gives the references and inputs; drop --ref/--input")
        args.ref, dataset_inputs = evaluate.export_pairs(folder, os.path.join(args.out, kind),
                                                         kind)
        if args.est is None:
            args.input = dataset_inputs
    if args.ref is None:
        raise UserError("give --ref (references), --testset (a built GSR test set) or --pairs "
                        "(built pairs)")
    if (args.est is None) == (args.input is None):
        raise UserError("give either --est (estimates to score) or --input (degraded files "
                        "to restore first, with --weights)")
    restorers = _named_weights(args.weights)
    if args.est is not None:
        if len(restorers) > 1:
            raise UserError("several --weights restore --input; with --est give none")
        evaluate.run(args.ref, args.est, args.out, workers=args.workers,
                     with_dnsmos=not args.no_dnsmos, overwrite=args.overwrite,
                     quiet=args.quiet)
        return 0
    if not os.path.isdir(args.input):
        raise UserError(f"--input {args.input} is not a folder")
    from vf_jax.audio.io import find_audio_files
    from vf_jax.restoration import files
    inputs = {os.path.splitext(r)[0]: os.path.join(args.input, r)
              for r in find_audio_files(args.input)}
    status, summaries = 0, {}
    for name, weights in restorers:
        # One restorer: OUT/restored and the report in OUT; several (side by
        # side): OUT/<name>/restored and OUT/<name>/, then OUT/comparison.md.
        out = args.out if len(restorers) == 1 else os.path.join(args.out, name)
        est = os.path.join(out, "restored")
        status |= restore_files(files.plan(args.input, est, args.overwrite), weights,
                                mode=args.mode, seed=0, precision="float32", subtype="FLOAT",
                                quiet=args.quiet, output=est)
        summaries[name] = evaluate.run(args.ref, est, out, workers=args.workers,
                                       with_dnsmos=not args.no_dnsmos,
                                       overwrite=args.overwrite, quiet=args.quiet,
                                       inputs=inputs)
    if len(restorers) > 1:
        import json
        report = evaluate.comparison(summaries)
        evaluate.write_whole(os.path.join(args.out, "comparison.md"), report)
        evaluate.write_whole(os.path.join(args.out, "comparison.json"),
                             json.dumps(summaries, indent=2, allow_nan=True) + "\n")
        if not args.quiet:
            print(report, file=sys.stderr)
    return status


def _named_weights(given: list | None) -> list[tuple[str, str | None]]:
    """``--weights [NAME=]FOLDER`` given 0+ times -> ``[(name, folder)]``
    (none: the cache's converted weights; a name defaults to the folder's)."""
    if not given:
        return [("restored", None)]
    named = []
    for item in given:
        name, sep, folder = item.partition("=")
        if not sep or os.path.isdir(item):
            name, folder = os.path.basename(os.path.normpath(item)), item
        if not name or name in {n for n, _ in named} or name in ("testset", "paired"):
            raise UserError(f"--weights {item}: give each restorer its own name "
                            "(--weights NAME=FOLDER)")
        named.append((name, folder))
    return named


# ---------------------------------------------------------------- main ---

def build_parser() -> argparse.ArgumentParser:
    from vf_jax.restoration import weights
    p = argparse.ArgumentParser(prog=PROG, description="VoiceFixer speech restoration in JAX.")
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("restore", help="restore a file or a folder of files")
    r.add_argument("-i", "--input", required=True, help="audio file or folder")
    r.add_argument("-o", "--output", required=True,
                   help="output file, or folder (the input tree mirrored; a folder run is "
                        "batched and resumable: run it again to go on)")
    r.add_argument("--weights", default=None,
                   help=f"weights folder (default: $VF_JAX_WEIGHTS or {weights.default_weights_dir()})")
    r.add_argument("--mode", type=int, choices=(0, 1, 2), default=0,
                   help="0: plain; 1: remove content above the 95%% energy bin first; "
                        "2: batch statistics and dropout (for severe damage)")
    r.add_argument("--precision", choices=("float32", "bf16"), default="float32",
                   help="the networks' arithmetic: float32, or bf16 (bfloat16: faster on "
                        "TPUs and recent GPUs; error against float32 in the README)")
    r.add_argument("--format", choices=("wav", "flac"), default="wav",
                   help="the outputs' format, for a folder (a file output: its extension)")
    r.add_argument("--subtype", default="PCM_16", help="output subtype (PCM_16, PCM_24, FLOAT, ...)")
    r.add_argument("--strength", type=float, default=1.0,
                   help="0-1: the restoration mixed with the input (1: restoration only)")
    r.add_argument("--loudness", choices=("peak", "input"), default="peak",
                   help="peak: the original's rule (scale down only past full scale); "
                        "input: the input's loudness (ITU-R BS.1770)")
    r.add_argument("--batch-size", type=int, default=None,
                   help="windows per device batch for a folder (default: per backend)")
    r.add_argument("--shard", default=None,
                   help="I/N: restore every N-th file from the I-th (one of N jobs)")
    r.add_argument("--distributed", action="store_true",
                   help="share the folder among the hosts of jax.distributed (TPU pods, SLURM)")
    r.add_argument("--coordinator", default=None, help="with --distributed: host:port of process 0")
    r.add_argument("--num-processes", type=int, default=None)
    r.add_argument("--process-id", type=int, default=None)
    r.add_argument("--seed", type=int, default=0, help="dropout seed for mode 2")
    r.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    r.set_defaults(func=cmd_restore)

    c = sub.add_parser("convert", help="convert the published PyTorch checkpoints")
    c.add_argument("--analysis", required=True, help="vf.ckpt (Zenodo record 5600188)")
    c.add_argument("--vocoder", default=None,
                   help="model.ckpt-1490000_trimed.pt (Zenodo record 5469951)")
    c.add_argument("--out", required=True, help="weights folder to write")
    c.add_argument("--overwrite", action="store_true", help="replace an existing weights folder")
    c.set_defaults(func=cmd_convert)

    x = sub.add_parser("export", help="a weights folder from any trained analysis network "
                                      "and vocoder")
    x.add_argument("--analysis", "--analysis-workdir", dest="analysis_workdir", required=True,
                   help="analysis training run folder, or a weights folder")
    x.add_argument("--vocoder", "--vocoder-workdir", dest="vocoder_workdir", required=True,
                   help="vocoder training run folder, or a weights folder")
    x.add_argument("--out", required=True, help="weights folder to write")
    x.add_argument("--checkpoint", default="best",
                   help="which checkpoint of a run: best (on validation; default), latest, "
                        "or a step")
    x.add_argument("--overwrite", action="store_true", help="replace an existing weights folder")
    x.set_defaults(func=cmd_export)

    g = sub.add_parser("degrade", help="degrade clean speech (test material)")
    g.add_argument("-i", "--input", required=True, help="clean audio file or folder")
    g.add_argument("-o", "--output", required=True,
                   help="output file, or folder (the input tree mirrored, .wav files)")
    g.add_argument("--preset", default="gsr", choices=("gsr", "denoise", "declip", "sr", "derev"),
                   help="gsr: every degradation as in training; or one alone")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--noise", default=None,
                   help="noise file or folder (default: synthetic pink noise)")
    g.add_argument("--rir", default=None,
                   help="room impulse response file or folder (default: synthetic)")
    g.add_argument("--target", default=None,
                   help="also write the clean target at the degraded level (file or folder)")
    g.add_argument("--subtype", default="PCM_16", help="output subtype")
    g.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    g.add_argument("--quiet", action="store_true", help="no progress bar")
    g.set_defaults(func=cmd_degrade)

    d = sub.add_parser("demo", help="degrade the shipped clip and restore it (offline)")
    d.add_argument("--out", default="demo_out", help="folder for the results (default demo_out)")
    d.add_argument("--weights", default=None, help="weights folder (default: the cache)")
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--train-seconds", type=float, default=60.0,
                   help="without converted weights: train the tiny model this long on the "
                        "clip and restore with it (default 60; 0: only degrade)")
    d.add_argument("--train-steps", type=int, default=None,
                   help="train exactly this many steps instead (same result on any machine)")
    d.add_argument("--quiet", action="store_true")
    d.set_defaults(func=cmd_demo)

    e = sub.add_parser("evaluate", help="the paper's metrics over folders, per subset")
    e.add_argument("--ref", default=None, help="folder of references (clean speech)")
    e.add_argument("--testset", default=None,
                   help="instead of --ref: the TFDS data folder holding the GSR test sets "
                        "(python -m vf_jax.data build testset); restored with --weights "
                        "unless --est is given")
    e.add_argument("--est", default=None, help="folder of estimates (same relative paths)")
    e.add_argument("--input", default=None,
                   help="instead of --est: degraded files to restore first (into OUT/restored)")
    e.add_argument("--pairs", default=None,
                   help="instead of --ref: the TFDS data folder of your pairs (python -m "
                        "vf_jax.data build paired): their held-out pairs, restored with --weights")
    e.add_argument("--weights", action="append", default=None, metavar="[NAME=]FOLDER",
                   help="weights folder for --input (default: cache); give it several times "
                        "to compare restorers side by side (OUT/comparison.md)")
    e.add_argument("--mode", type=int, choices=(0, 1, 2), default=0, help="restore mode")
    e.add_argument("--out", default="evaluation", help="report folder (default evaluation)")
    e.add_argument("--workers", type=int, default=0, help="worker processes (0: up to 4)")
    e.add_argument("--no-dnsmos", action="store_true", help="skip DNSMOS")
    e.add_argument("--overwrite", action="store_true", help="replace an existing report")
    e.add_argument("--quiet", action="store_true")
    e.set_defaults(func=cmd_evaluate)
    return p


def main(argv=None) -> int:
    _quiet_libraries()
    args = build_parser().parse_args(argv)
    return run_guarded(f"{PROG} {args.command}", lambda: args.func(args))
