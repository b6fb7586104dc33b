"""The published weights, downloaded, verified and converted in one call
(``python -m vf_jax weights download``, :func:`download_weights`).

The two files VoiceFixer publishes on Zenodo (README: "The weights") are
fetched into a download cache (:func:`download_cache_dir`), each checked
against what its Zenodo record's metadata says (``/api/records/<id>``: every
file's name, size and MD5 checksum and its link), then converted into a weights
folder (:mod:`vf_jax.restoration.convert`, no PyTorch). The sizes and checksums
are read from the record at download time, not written here.

- A download goes to ``<name>.part`` and is renamed only once its size and
  checksum are right; an interrupted one resumes where it stopped (HTTP range
  requests), within the call (a few tries) or by running the command again. A
  wrong checksum deletes the file and says so.
- Free space is checked before anything is fetched, and the target's folder
  is checked writable; the weights folder itself is written beside the target
  and renamed into place (:func:`vf_jax.restoration.weights.save`), so it is
  either absent or complete.
- A mirror (``--mirror URL`` or ``$VF_JAX_MIRROR``) is a server with Zenodo's
  paths: the record's metadata at ``URL/api/records/<id>``, and each file at
  the path of the link the metadata gives, on the mirror's host.
"""

from __future__ import annotations

import contextlib
import dataclasses
import http.client
import json
import os
import shutil
import socket
import sys
import urllib.error
import urllib.parse
import urllib.request

import pooch
from tqdm import tqdm

from vf_jax.errors import UserError
from vf_jax.restoration import convert
from vf_jax.restoration import weights as weights_lib

ZENODO = "https://zenodo.org"
MIRROR_ENV = "VF_JAX_MIRROR"
DOWNLOADS_ENV = "VF_JAX_DOWNLOADS"
CHUNK = 1 << 20
TRIES = 4


@dataclasses.dataclass(frozen=True)
class Published:
    """One published file: its role, Zenodo record and name."""
    role: str
    record: int
    name: str


# The original package's own download links name these (voicefixer 0.1.3,
# ``voicefixer/restorer/__init__.py`` and ``voicefixer/vocoder/__init__.py``).
PUBLISHED = (Published("analysis", 5600188, "vf.ckpt"),
             Published("vocoder", 5469951, "model.ckpt-1490000_trimed.pt"))


@dataclasses.dataclass(frozen=True)
class RemoteFile:
    """A file as its record's metadata describes it (``licence``: the
    record's, as its metadata names it; empty when it names none)."""
    name: str
    size: int
    md5: str
    url: str
    licence: str = ""


def record_licence(meta: dict) -> str:
    """The licence a Zenodo record's metadata names (``metadata.license``:
    an id such as ``cc-by-4.0``, or an object holding one)."""
    licence = (meta.get("metadata") or {}).get("license") if isinstance(meta, dict) else None
    if isinstance(licence, dict):
        licence = licence.get("id") or licence.get("title")
    return str(licence) if licence else ""


def download_cache_dir() -> str:
    """Where downloads are kept: ``$VF_JAX_DOWNLOADS``, else
    ``~/.cache/vf_jax/downloads``."""
    return os.path.expanduser(os.environ.get(DOWNLOADS_ENV)
                              or os.path.join("~", ".cache", "vf_jax", "downloads"))


def clear_cache(folder: str | None = None) -> int:
    """Delete the download cache (finished and partial files); returns the
    bytes freed."""
    folder = folder or download_cache_dir()
    if not os.path.isdir(folder):
        return 0
    freed = sum(os.path.getsize(os.path.join(root, f))
                for root, _, files in os.walk(folder) for f in files)
    shutil.rmtree(folder)
    return freed


def _open(url: str, timeout: float, start: int = 0):
    headers = {"User-Agent": "vf_jax"}
    if start:
        headers["Range"] = f"bytes={start}-"
    return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)


def _reason(e: BaseException) -> str:
    if isinstance(e, urllib.error.HTTPError):
        return f"HTTP {e.code} {e.reason}"
    reason = getattr(e, "reason", None) or e
    if isinstance(reason, (socket.timeout, TimeoutError)):
        return "no answer in time"
    return str(reason) or type(reason).__name__


def _network_error(what: str, url: str, e: BaseException) -> UserError:
    return UserError(f"{what}: {_reason(e)} from {url}")


def on_mirror(url: str, mirror: str | None) -> str:
    """``url`` (a link of Zenodo's metadata) fetched from ``mirror``'s host."""
    if not mirror:
        return url
    link, host = urllib.parse.urlsplit(url), urllib.parse.urlsplit(mirror)
    return urllib.parse.urlunsplit((host.scheme, host.netloc, link.path, link.query, ""))


def record_files(record: int, mirror: str | None = None, timeout: float = 30.0) -> dict:
    """``{name: RemoteFile}`` of a Zenodo record, from its metadata."""
    base = (mirror or ZENODO).rstrip("/")
    url = f"{base}/api/records/{record}"
    try:
        for attempt in range(TRIES):         # a busy server: try again; an HTTP error: stop
            try:
                with _open(url, timeout) as response:
                    meta = json.loads(response.read().decode("utf-8"))
                break
            except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
                if isinstance(e, urllib.error.HTTPError) or attempt == TRIES - 1 or \
                        not isinstance(getattr(e, "reason", e), (socket.timeout, TimeoutError)):
                    raise
    except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
        raise _network_error(f"cannot read Zenodo record {record}", url, e) from None
    except ValueError:
        raise UserError(f"Zenodo record {record}: the metadata at {url} is not JSON") from None
    entries = meta.get("files") if isinstance(meta, dict) else None
    if isinstance(entries, dict):        # {"entries": {...}} in some versions of the API
        entries = list(entries.get("entries", {}).values())
    found = {}
    for entry in entries or []:
        try:
            name = entry.get("key") or entry["filename"]
            size = int(entry.get("size", entry.get("filesize")))
            md5 = str(entry["checksum"]).split(":")[-1].lower()
            links = entry.get("links", {})
            link = links.get("self") or links.get("content") or links["download"]
        except (KeyError, TypeError, ValueError, AttributeError):
            raise UserError(f"Zenodo record {record}: a file entry without a name, size, "
                            f"checksum or link at {url}") from None
        found[name] = RemoteFile(name, size, md5, on_mirror(link, mirror),
                                 record_licence(meta))
    return found


def _check_space(folder: str, needed: int, what: str) -> None:
    free = shutil.disk_usage(folder).free
    if free < needed:
        raise UserError(f"not enough free space for {what} in {folder}: "
                        f"{needed / 1e6:.0f} MB needed, {free / 1e6:.0f} MB free")


@contextlib.contextmanager
def taking_turns(path: str, what: str, quiet: bool = False):
    """Hold an exclusive lock on the file ``path`` while inside, waiting (and
    saying so) while another process holds it: two processes fetching one
    file into one cache (``restore`` and ``serve`` on first use) take turns,
    and the second finds the first's verified file. Where the system has no
    ``fcntl`` (Windows) nothing is locked."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    said = False
    while True:
        lock = open(path, "a")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if not (quiet or said):
                print(f"another process is downloading {what} into this cache; waiting for it",
                      file=sys.stderr)
                said = True
            fcntl.flock(lock, fcntl.LOCK_EX)
        try:        # still the file at ``path``, not one its holder removed
            if os.fstat(lock.fileno()).st_ino == os.stat(path).st_ino:
                break
        except FileNotFoundError:
            pass
        lock.close()
    try:
        yield
    finally:        # removed while held, so no lock file stays behind
        _remove(path)
        fcntl.flock(lock, fcntl.LOCK_UN)
        lock.close()


def fetch(remote: RemoteFile, folder: str, quiet: bool = False,
          timeout: float = 30.0) -> str:
    """``remote`` into ``folder`` (kept if already there and verified);
    returns its path. Resumes a partial download; one process at a time
    (:func:`taking_turns`); see the module."""
    os.makedirs(folder, exist_ok=True)
    with taking_turns(os.path.join(folder, remote.name + ".lock"), remote.name, quiet):
        return _fetch(remote, folder, quiet, timeout)


def _fetch(remote: RemoteFile, folder: str, quiet: bool, timeout: float) -> str:
    final = os.path.join(folder, remote.name)
    if os.path.isfile(final) and os.path.getsize(final) == remote.size \
            and pooch.file_hash(final, alg="md5") == remote.md5:
        return final
    part = final + ".part"
    have = os.path.getsize(part) if os.path.isfile(part) else 0
    if have > remote.size:
        os.remove(part)
        have = 0
    _check_space(folder, remote.size - have, remote.name)
    bar = tqdm(total=remote.size, initial=have, unit="B", unit_scale=True,
               desc=remote.name, disable=quiet, file=sys.stderr, leave=False)
    error = None
    try:
        for _ in range(TRIES):
            if have == remote.size:
                break
            try:
                have = _fetch_from(remote, part, have, timeout, bar)
                error = None
                if have > remote.size:
                    _remove(part)
                    raise UserError(f"{remote.name}: the server sent more than the "
                                    f"{remote.size} bytes its record lists; the download "
                                    "was deleted")
            except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
                if isinstance(e, urllib.error.HTTPError):
                    raise _network_error(f"cannot download {remote.name}", remote.url,
                                         e) from None
                if isinstance(e, OSError) and e.errno == 28:       # ENOSPC: no retry
                    _remove(part)
                    raise UserError(f"the disk filled up downloading {remote.name} into "
                                    f"{folder}; the partial file was deleted") from None
                error = e
                have = os.path.getsize(part) if os.path.isfile(part) else 0
    finally:
        bar.close()
    if have != remote.size:
        raise UserError(f"cannot download {remote.name} from {remote.url}: {_reason(error)} "
                        f"after {TRIES} tries; {have} of {remote.size} bytes kept, "
                        "run again to resume")
    digest = pooch.file_hash(part, alg="md5")
    if digest != remote.md5:
        _remove(part)
        raise UserError(f"{remote.name}: checksum mismatch (md5 {digest}, the record says "
                        f"{remote.md5}); the download was deleted")
    os.replace(part, final)
    return final


def _fetch_from(remote: RemoteFile, part: str, have: int, timeout: float, bar) -> int:
    """Append to ``part`` from byte ``have``; returns the bytes now there."""
    with _open(remote.url, timeout, have) as response:
        if have and response.status != 206:        # the server sends it all again
            have = 0
            bar.reset(total=remote.size)
        with open(part, "ab" if have else "wb") as out:
            while True:
                block = response.read1(CHUNK)     # what has arrived: a timeout loses none
                if not block:
                    break
                out.write(block)
                have += len(block)
                bar.update(len(block))
                if have > remote.size:
                    break
    if have < remote.size:
        raise http.client.IncompleteRead(b"", remote.size - have)
    return have


def _remove(path: str) -> None:
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


def published_folder(path: str) -> bool:
    """Whether ``path`` is a complete weights folder converted from the
    published files (its record and variables read back)."""
    if not weights_lib.is_weights_dir(path):
        return False
    try:
        meta = weights_lib.load_meta(path)
        names = {p.get("file") for p in meta.get("provenance", {}).values()}
        if names != {p.name for p in PUBLISHED}:
            return False
        weights_lib.load(path)
    except (UserError, OSError, ValueError):
        return False
    return True


def download_weights(to: str | None = None, mirror: str | None = None,
                     overwrite: bool = False, quiet: bool = False,
                     timeout: float = 30.0, cache: str | None = None,
                     from_files: tuple[str, str] | None = None,
                     announce=None) -> tuple[str, bool]:
    """Download (or take ``from_files``: ``(vf.ckpt, vocoder file)``) and
    convert the published weights into ``to`` (default:
    :func:`vf_jax.restoration.weights.default_weights_dir`). Returns ``(the
    folder, whether it was written)``: an existing complete folder of the
    published weights is kept unless ``overwrite``. ``announce(text)``
    hears what is fetched, with sizes."""
    to = os.path.abspath(os.path.expanduser(to or weights_lib.default_weights_dir()))
    if not overwrite and published_folder(to):
        return to, False
    weights_lib.check_target(to, overwrite)      # before fetching half a gigabyte
    if from_files:
        paths = list(from_files)
    else:
        mirror = mirror or os.environ.get(MIRROR_ENV) or None
        remotes = []
        for published in PUBLISHED:
            files = record_files(published.record, mirror, timeout)
            if published.name not in files:
                raise UserError(f"Zenodo record {published.record} lists no {published.name}")
            remotes.append(files[published.name])
        _check_space(os.path.dirname(to), sum(r.size for r in remotes), "the weights folder")
        if announce is not None:
            announce("fetching " + ", ".join(f"{r.name} ({r.size / 1e6:.0f} MB)"
                                              for r in remotes))
        folder = cache or download_cache_dir()
        paths = [fetch(remote, folder, quiet, timeout) for remote in remotes]
    variables, report, provenance = convert.convert(*paths)
    if not from_files:         # where each file came from, and under what licence
        for published, remote in zip(PUBLISHED, remotes):
            provenance[published.role].update(
                record=f"https://zenodo.org/records/{published.record}",
                licence=remote.licence or "not stated in the record's metadata")
            if announce is not None and remote.licence:
                announce(f"{remote.name}: licence {remote.licence} "
                         f"(Zenodo record {published.record})")
    meta = weights_lib.describe("released", provenance, report)
    weights_lib.save(to, variables, meta, overwrite=overwrite)
    return to, True


OFFLINE_ENV = "VF_JAX_OFFLINE"
FETCH_COMMAND = "python -m vf_jax weights download"


def offline_requested(offline: bool = False) -> bool:
    """``offline``, or ``$VF_JAX_OFFLINE`` set to 1/true/yes."""
    return offline or os.environ.get(OFFLINE_ENV, "").strip().lower() in ("1", "true", "yes")


def ensure_weights(path: str | None, offline: bool = False, quiet: bool = False) -> str:
    """The weights folder to restore with. A folder named by the user is
    returned as it is (a missing one stays an error when it is read). With
    none named, the default folder
    (:func:`vf_jax.restoration.weights.default_weights_dir`); when it holds no
    weights, they are downloaded and converted into it, as the original
    package does on first use, unless ``offline`` (or ``$VF_JAX_OFFLINE``):
    then a one-line error names the command that fetches them."""
    if path is not None:
        return path
    path = os.path.expanduser(weights_lib.default_weights_dir())
    if weights_lib.is_weights_dir(path):
        return path
    if offline_requested(offline):
        raise UserError(f"no weights in {path}; fetch VoiceFixer's published weights once "
                        f"with `{FETCH_COMMAND}` (offline now: --offline or {OFFLINE_ENV})")
    say = (lambda text: None) if quiet else (lambda text: print(text, file=sys.stderr))
    say(f"no weights in {path}: downloading VoiceFixer's published weights (Zenodo records "
        f"{', '.join(str(p.record) for p in PUBLISHED)}) and converting them, once")
    try:
        download_weights(path, quiet=quiet, announce=say)
    except UserError as e:
        raise UserError(f"{e} (no weights in {path}; `{FETCH_COMMAND}` retries, "
                        f"--offline skips the download)") from None
    return path
