"""The restoration page, built with Gradio: upload (one file or several) or
record, choose the settings ``restore`` has, press Restore, listen, look at the
spectrograms, download (one WAV, or a zip for several files).

One weights folder is read when the server starts; requests queue, so the
device restores one request at a time. Everything the server keeps lies in its
private :class:`~vf_jax.serving.workspace.Workspace`: uploads are deleted when
their request ends, results after ``keep_minutes``, the rest when the server
stops. The page loads nothing from outside the server.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import sys
import time
import traceback

from vf_jax.errors import UserError
from vf_jax.serving import uploads as uploads_lib
from vf_jax.serving.workspace import Workspace

TITLE = "vf_jax speech restoration"
MODE_CHOICES = [("0: plain", 0), ("1: remove content above the 95% energy bin first", 1),
                ("2: batch statistics and dropout (severe damage)", 2)]
INTRO = """# Speech restoration
VoiceFixer (Liu et al. 2021) in JAX: noise, reverberation, clipping and low
bandwidth removed at once; 44.1 kHz speech comes out. Upload audio in any format
and at any rate, several files at once (they come back as a zip), or record.
"""


@dataclasses.dataclass
class Outcome:
    """What one press of Restore shows: the audio to play, the file to
    download, the spectrogram figure and the report."""
    play: str | None
    download: str | None
    figure: str | None
    report: str


class Service:
    """The page's work, apart from the page: restoring uploads with one set of
    :class:`~vf_jax.serving.uploads.Restorers` inside one workspace."""

    def __init__(self, restorers, workspace: Workspace, limits: uploads_lib.Limits):
        self.restorers, self.workspace, self.limits = restorers, workspace, limits

    def restore(self, files, recording, settings: uploads_lib.Settings,
                progress=None) -> Outcome:
        """Restore the uploads ``files`` (paths) and ``recording`` (a path or
        None); the uploads are deleted whatever happens. Raises
        :class:`UserError` when nothing could be restored."""
        paths = [p for p in list(files or []) + [recording] if p]
        try:
            if not paths:
                raise UserError("upload an audio file (or record one) first")
            settings.check()
            return self._restore(paths, settings, progress)
        finally:
            for path in paths:
                self.workspace.remove_upload(path)

    def _restore(self, paths, settings, progress) -> Outcome:
        restorer = self.restorers(settings.precision)
        out_dir = self.workspace.result_folder()
        expected = []
        for path in paths:      # for the progress bar; errors come when each is restored
            try:
                expected.append(uploads_lib.check_upload(path, self.limits))
            except UserError:
                expected.append(0.0)
        total, done, results = max(sum(expected), 1e-9), 0.0, []
        for path, seconds in zip(paths, expected):
            advance = file_progress(progress, done, seconds, total,
                                    uploads_lib.display_name(path))
            results.append(uploads_lib.restore_upload(
                restorer, path, settings, out_dir, self.limits, advance,
                figure=not any(r.path for r in results)))      # the first restored file's
            done += seconds
        good = [r for r in results if r.path]
        if not good:
            raise UserError("; ".join(r.error for r in results))
        shown = good[0]
        download = shown.path if len(paths) == 1 else uploads_lib.zip_results(
            good, uploads_lib.unique_path(out_dir, "restored.zip"))
        return Outcome(shown.path, download, shown.figure, uploads_lib.report(results))


def file_progress(progress, base: float, seconds: float, total: float, name: str):
    """A callback taking one file's increments of seconds restored, reporting
    ``progress(fraction of the request, text)`` (nothing when ``progress`` is None)."""
    covered = 0.0

    def advance(increment: float) -> None:
        nonlocal covered
        covered += increment
        if progress is not None:
            progress(min(1.0, (base + min(covered, seconds)) / total), f"restoring {name}")
    return advance


def build_page(service: Service, keep_minutes: float):
    """The Gradio page around ``service`` (not launched)."""
    import gradio as gr

    from vf_jax.serving.components import uploads_field

    def on_restore(files, recording, mode, strength, loudness, precision,
                   progress=gr.Progress()):
        settings = uploads_lib.Settings(int(mode), float(strength), loudness, precision)
        start = time.perf_counter()
        try:
            outcome = service.restore(files, recording, settings,
                                      lambda f, desc: progress(f, desc=desc))
        except UserError as e:
            raise gr.Error(str(e), print_exception=False) from None
        except Exception as e:     # a bug: the page says so and the server goes on
            traceback.print_exc(file=sys.stderr)
            raise gr.Error(f"internal error: {type(e).__name__}: {e}",
                           print_exception=False) from None
        took = f"\n\nRequest took {time.perf_counter() - start:.2f} s in all."
        return outcome.play, outcome.download, outcome.figure, outcome.report + took

    # Files are swept every minute and kept keep_minutes (Gradio's own cache,
    # where it copies the results it serves).
    keep = max(60, int(keep_minutes * 60))
    with gr.Blocks(title=TITLE, analytics_enabled=False, delete_cache=(60, keep)) as page:
        gr.Markdown(INTRO)
        with gr.Row():
            with gr.Column():
                files = uploads_field(label="Audio files", elem_id="upload")
                recording = gr.Audio(label="Or record", sources=["microphone"],
                                     type="filepath", elem_id="record")
                mode = gr.Radio(MODE_CHOICES, value=0, label="Mode", elem_id="mode")
                strength = gr.Slider(0.0, 1.0, value=1.0, step=0.05, elem_id="strength",
                                     label="Strength (restoration mixed with the input; "
                                           "1: restoration only)")
                loudness = gr.Radio([("peak (the original's rule)", "peak"),
                                     ("input (the input's loudness, ITU-R BS.1770)", "input")],
                                    value="peak", label="Loudness", elem_id="loudness")
                precision = gr.Radio(list(uploads_lib.PRECISIONS), value="float32",
                                     label="Precision", elem_id="precision")
                button = gr.Button("Restore", variant="primary", elem_id="restore")
            with gr.Column():
                play = gr.Audio(label="Restored", type="filepath", interactive=False,
                                elem_id="restored")
                download = gr.File(label="Download (44.1 kHz WAV; several files: a zip)",
                                   interactive=False, elem_id="download")
                figure = gr.Image(label="Log-mel spectrograms: input | restored",
                                  type="filepath", interactive=False, elem_id="figure",
                                  height=340)
                report = gr.Markdown(elem_id="report")
        gr.Markdown(f"Uploads are deleted when their request ends; results stay "
                    f"downloadable for {keep_minutes:g} minutes. Limits: "
                    f"{service.limits.max_upload_mb:g} MB and "
                    f"{service.limits.max_seconds:g} s per file.")
        button.click(on_restore, [files, recording, mode, strength, loudness, precision],
                     [play, download, figure, report], api_name="restore",
                     concurrency_limit=1)
    return page.queue(default_concurrency_limit=1)


def launch(weights: str, host: str = "127.0.0.1", port: int | None = 7860,
           share: bool = False, limits: uploads_lib.Limits = uploads_lib.Limits(),
           keep_minutes: float = 60.0, inline: bool | None = None, block: bool = True,
           quiet: bool = False):
    """Read ``weights``, start the page on ``host:port`` and serve (until
    Ctrl-C with ``block``; otherwise return ``(page, url, workspace)`` with
    the server running in the background: ``page.close()`` and
    ``workspace.close()`` stop it)."""
    workspace = Workspace(keep_seconds=keep_minutes * 60)
    # Gradio keeps its uploads and the copies it serves in this folder (read
    # when it is imported and when the server starts: set before both).
    os.environ["GRADIO_TEMP_DIR"] = workspace.framework
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"     # no telemetry, no version check
    try:
        importlib.import_module("gradio")
    except ImportError:
        workspace.close()
        raise UserError("the page needs its requirements: pip install -r "
                        "requirements-serve.txt") from None
    try:
        service = Service(uploads_lib.Restorers(weights), workspace, limits)
        workspace.sweep_every(60.0)
        page = build_page(service, keep_minutes)
        try:
            _, url, _ = page.launch(server_name=host, server_port=port, share=share,
                                    inline=inline, prevent_thread_lock=True, quiet=True,
                                    max_file_size=int(limits.max_upload_mb * 1e6),
                                    ssr_mode=False, footer_links=[], show_error=True)
        except OSError as e:
            raise UserError(f"cannot listen on {host}:{port}: {e}") from None
    except BaseException:
        workspace.close()
        raise
    if not quiet:
        print(f"serving the restoration page on {url}" + (" (Ctrl-C stops)" if block else ""),
              file=sys.stderr)
    if not block:
        return page, url, workspace
    try:
        page.block_thread()
    finally:
        page.close()
        workspace.close()
    return page, url, workspace
