"""The restoration page (``python -m vf_jax serve``): upload or record speech,
restore it with a weights folder, listen, compare spectrograms, download.

:mod:`~vf_jax.serving.workspace` is the server's private temporary folder,
:mod:`~vf_jax.serving.uploads` restores what the page is given (no web
framework in it), :mod:`~vf_jax.serving.page` is the Gradio page around it.
"""
