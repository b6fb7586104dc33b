"""Restoring a folder of files (``python -m vf_jax restore -i DIR -o OUT``):
batched, shared among processes and hosts, resumable.

Each process takes every N-th file of the sorted list from its index I
(``--shard I/N``, or the process index and count of ``jax.distributed``),
reads ahead in a thread, restores through
:meth:`vf_jax.restoration.restorer.Restorer.restore_many` (windows of many
files in shared device batches) and writes in background threads, each
output whole (a temporary file, then a rename).

The output folder keeps a manifest in ``OUT/.vf_jax/``: ``settings.json``
(what the outputs are made with) and one JSON Lines file per shard, a line per
file: input and output (relative), the input's size and modification time,
seconds of audio, seconds taken, status (``done`` or ``failed``), the error,
and the settings' fingerprint. Running the same command again restores only
what is not recorded as done with the same settings, the same input size and
time, and an existing output; files a killed run left half-written
(``.vf_jax-*`` temporary files) are removed. Other settings in the same
output folder are refused unless ``--overwrite``, and so are existing files
in a folder that has no manifest. Inputs are only read.
"""

from __future__ import annotations

import collections
import dataclasses
import glob
import hashlib
import json
import os
import signal
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from vf_jax.errors import UserError

MANIFEST_DIR = ".vf_jax"
SETTINGS_FILE = "settings.json"
TEMPORARY_PREFIX = ".vf_jax-"        # vf_jax.audio.io.write_audio's temporary files


@dataclasses.dataclass(frozen=True)
class Shard:
    """This process's share: files ``index, index + count, ...`` of the sorted list."""
    index: int = 0
    count: int = 1

    @classmethod
    def parse(cls, text: str) -> "Shard":
        try:
            i, n = (int(x) for x in text.split("/"))
        except ValueError:
            raise UserError(f"--shard takes I/N (e.g. 0/4), got {text!r}") from None
        if not 0 <= i < n:
            raise UserError(f"--shard I/N needs 0 <= I < N, got {text!r}")
        return cls(i, n)

    def take(self, items: list) -> list:
        return items[self.index::self.count]

    def name(self) -> str:
        return f"shard-{self.index}-of-{self.count}.jsonl"

    def temporary_prefix(self) -> str:
        """This shard's temporary files, so that one shard starting does not
        remove the files another is writing."""
        return f"{TEMPORARY_PREFIX}{self.index}-of-{self.count}-"


def fingerprint(settings: dict) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


def weights_identity(path: str) -> str:
    """The weights folder's description (``vf_jax.json``) as a digest: another
    folder, or the same one converted again, is other settings."""
    from vf_jax.restoration import weights
    meta = weights.load_meta(path)
    return hashlib.sha256(json.dumps(meta, sort_keys=True).encode()).hexdigest()[:16]


def _input_state(path: str) -> dict:
    st = os.stat(path)
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


class Manifest:
    """The output folder's record of what was restored (see the module)."""

    def __init__(self, out_dir: str, settings: dict, shard: Shard):
        self.dir = os.path.join(out_dir, MANIFEST_DIR)
        self.settings, self.key = settings, fingerprint(settings)
        self.path = os.path.join(self.dir, shard.name())
        self.lock = threading.Lock()

    def exists(self) -> bool:
        return os.path.isfile(os.path.join(self.dir, SETTINGS_FILE))

    def recorded_settings(self) -> dict | None:
        try:
            with open(os.path.join(self.dir, SETTINGS_FILE)) as f:
                return json.load(f)
        except (OSError, ValueError):
            return None

    def start(self) -> None:
        """Write the settings (atomically: every shard may do it at once)."""
        os.makedirs(self.dir, exist_ok=True)
        tmp = os.path.join(self.dir, f".{SETTINGS_FILE}.{os.getpid()}")
        with open(tmp, "w") as f:
            json.dump(self.settings, f, indent=2, sort_keys=True)
        os.replace(tmp, os.path.join(self.dir, SETTINGS_FILE))

    def done(self) -> dict[str, dict]:
        """Input (relative path) -> its last ``done`` record made with these
        settings, from every shard's file (a line cut short by a kill is skipped)."""
        out: dict[str, dict] = {}
        for path in sorted(glob.glob(os.path.join(self.dir, "shard-*.jsonl"))):
            with open(path) as f:
                for line in f:
                    try:
                        record = json.loads(line)
                    except ValueError:
                        continue
                    if record.get("settings") != self.key:
                        continue
                    if record.get("status") == "done":
                        out[record["input"]] = record
                    else:
                        out.pop(record.get("input"), None)
        return out

    def append(self, record: dict) -> None:
        line = json.dumps({**record, "settings": self.key}) + "\n"
        with self.lock:
            with open(self.path, "a") as f:
                f.write(line)
                f.flush()
                os.fsync(f.fileno())


def remove_temporary_files(out_dir: str, shard: Shard) -> int:
    """Half-written outputs a killed run of this shard left beside the outputs
    (any run's, when the folder is not shared)."""
    removed = 0
    prefix = TEMPORARY_PREFIX if shard.count == 1 else shard.temporary_prefix()
    for path in glob.glob(os.path.join(out_dir, "**", glob.escape(prefix) + "*"),
                          recursive=True):
        if os.path.isfile(path) and MANIFEST_DIR not in os.path.relpath(path, out_dir).split(
                os.sep)[:1]:
            os.remove(path)
            removed += 1
    return removed


@dataclasses.dataclass
class Plan:
    """What this process will do: ``todo`` pairs, how many it skips."""
    todo: list
    skipped: int
    share: int


def plan(pairs: list, in_dir: str, out_dir: str, manifest: Manifest, shard: Shard,
         overwrite: bool) -> Plan:
    """This shard's pairs less those done before; refuses what would lose
    data or mix settings (see the module)."""
    recorded = manifest.recorded_settings()
    if recorded is not None and recorded != manifest.settings and not overwrite:
        changed = sorted(k for k in set(recorded) | set(manifest.settings)
                         if recorded.get(k) != manifest.settings.get(k))
        raise UserError(f"{out_dir} holds outputs made with other settings "
                        f"({', '.join(changed)}); use another output folder or --overwrite")
    if recorded is None and not overwrite:
        existing = [o for _, o in pairs if os.path.exists(o)]
        if existing:
            more = f" and {len(existing) - 1} more" if len(existing) > 1 else ""
            raise UserError(f"output exists: {existing[0]}{more} (use --overwrite to replace)")
    share = shard.take(pairs)
    done = manifest.done()
    todo, skipped = [], 0
    for src, dst in share:
        record = done.get(os.path.relpath(src, in_dir))
        if (record is not None and os.path.exists(dst)
                and {k: record.get(k) for k in ("size", "mtime_ns")} == _input_state(src)):
            skipped += 1
        else:
            todo.append((src, dst))
    return Plan(todo, skipped, len(share))


def run(pairs: list, in_dir: str, out_dir: str, make_restorer, *, settings: dict, shard: Shard,
        overwrite: bool, mode: int, seed: int, strength: float, loudness: str, subtype: str,
        batch_size: int | None, quiet: bool, prog: str) -> int:
    """Restore a folder's ``(input, output)`` pairs with the restorer
    ``make_restorer()`` returns (called once something is left to do);
    returns the exit status."""
    import jax

    from vf_jax.audio import io as audio_io
    from vf_jax.audio.io import SAMPLE_RATE
    from vf_jax.restoration import files
    manifest = Manifest(out_dir, settings, shard)
    job = plan(pairs, in_dir, out_dir, manifest, shard, overwrite)
    os.makedirs(out_dir, exist_ok=True)
    manifest.start()
    remove_temporary_files(out_dir, shard)
    restorer = make_restorer() if job.todo else None

    durations = [files.audio_info(src)[0] for src, _ in job.todo]
    bar = None if quiet else files.audio_progress(sum(durations), "restoring")
    say = (bar.write if bar is not None else print)

    stop = {"signal": None}

    def on_signal(sig, frame):
        if stop["signal"] is not None:        # the second: abandon at once
            raise KeyboardInterrupt
        stop["signal"] = sig
        say("stopping after the outputs being written (again to abandon them)",
            file=sys.stderr)

    handlers = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}

    counts = {"done": 0, "failed": 0, "audio": 0.0}
    started = time.perf_counter()

    def record(src, dst, status, seconds, took, error=None):
        state = _input_state(src) if os.path.exists(src) else {"size": None, "mtime_ns": None}
        manifest.append({"input": os.path.relpath(src, in_dir),
                         "output": os.path.relpath(dst, out_dir), **state,
                         "seconds": round(seconds, 3), "took": round(took, 3),
                         "status": status, "error": error})

    def write(src, dst, audio, began):
        try:
            audio_io.write_audio(dst, audio, SAMPLE_RATE, subtype, shard.temporary_prefix())
        except UserError as e:
            return src, dst, e, began
        return src, dst, None, began

    def finished(future):
        src, dst, error, began = future.result()
        seconds = durations[index_of[src]]
        if error is None:
            record(src, dst, "done", seconds, time.perf_counter() - began)
            counts["done"] += 1
            counts["audio"] += seconds
        else:
            record(src, dst, "failed", seconds, time.perf_counter() - began, str(error))
            counts["failed"] += 1
            say(f"failed: {error}", file=sys.stderr)
        if bar is not None:       # never past the total the headers gave
            bar.update(max(0.0, min(seconds, bar.total - bar.n)))

    index_of = {src: i for i, (src, _) in enumerate(job.todo)}
    writers = ThreadPoolExecutor(2, thread_name_prefix="vf_jax-write")
    pending: collections.deque = collections.deque()
    results = None
    try:
        began = time.perf_counter()
        results = iter(()) if restorer is None else restorer.restore_many(
            (src for src, _ in job.todo), mode=mode, batch_size=batch_size, seed=seed,
            strength=strength, loudness=loudness)
        for (src, dst), result in zip(job.todo, results):
            if stop["signal"] is not None:
                break
            if isinstance(result, UserError):
                record(src, dst, "failed", durations[index_of[src]], 0.0, str(result))
                counts["failed"] += 1
                say(f"failed: {result}", file=sys.stderr)
                continue
            while len(pending) >= 8:      # writing falls behind: wait, holding less audio
                pending.popleft().result()
            pending.append(writers.submit(write, src, dst, result.audio, began))
            pending[-1].add_done_callback(finished)
            pending = collections.deque(f for f in pending if not f.done())
            began = time.perf_counter()
    finally:
        if hasattr(results, "close"):
            results.close()               # stops reading ahead
        writers.shutdown(wait=True)       # outputs in flight are written whole
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
        if bar is not None:
            bar.close()
    wall = time.perf_counter() - started
    left = len(job.todo) - counts["done"] - counts["failed"]
    if not quiet or stop["signal"] is not None:
        devices = jax.local_device_count()
        rate = counts["audio"] / wall if wall > 0 else 0.0
        print(f"restored {counts['done']}, skipped {job.skipped} (done before), failed "
              f"{counts['failed']} of {job.share} file(s) -> {out_dir}; "
              f"{counts['audio'] / 3600:.2f} h of audio in {wall:.1f} s "
              f"({rate:.1f} audio s/s, {rate / devices:.1f} per device)", file=sys.stderr)
    if stop["signal"] is not None:
        print(f"{prog} restore: stopped with {left} file(s) left; run the same command "
              "again to go on", file=sys.stderr)
        return 128 + int(stop["signal"])
    if counts["failed"]:
        print(f"{prog} restore: {counts['failed']} file(s) failed (listed in "
              f"{manifest.path})", file=sys.stderr)
        return 1
    return 0
