"""The page's uploads field: ``gr.File`` with one change."""

from __future__ import annotations


def uploads_field(**kwargs):
    """``gr.File(file_count="multiple", **kwargs)`` whose value is the
    uploads' paths, as ``gr.File`` gives them, without the empty temporary
    file that ``gr.File`` makes beside the uploads on every request and never
    deletes (Gradio 6.31): an upload must leave nothing behind. The change is
    on this one object (a subclass would make Gradio write a type-stub file
    into the package)."""
    import gradio as gr
    from gradio.data_classes import ListFiles

    field = gr.File(file_count="multiple", type="filepath", **kwargs)

    def preprocess(payload):
        if payload is None:
            return None
        files = payload.root if isinstance(payload, ListFiles) else [payload]
        return [f.path for f in files]

    field.preprocess = preprocess
    return field
