"""Restore a few inputs with ``Restorer.restore_many`` over 4 simulated CPU
devices (the rows of each batch split among them) and alone on one; prints
the largest difference relative to each result's peak, as JSON
(``tests/restoration/test_restore_many.py``). argv[1]: a weights folder."""

import json
import os
import sys

import jax

jax.config.update("jax_num_cpu_devices", 4)
TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [TESTS, os.path.dirname(TESTS)]   # tests/ and the repository

import numpy as np  # noqa: E402

from vf_jax.audio.synthetic import speech_like, voiced_signal  # noqa: E402
from vf_jax.restoration import weights  # noqa: E402
from vf_jax.restoration.batched import BatchedRestoration  # noqa: E402
from vf_jax.restoration.restorer import Restorer  # noqa: E402

restorer = Restorer(*weights.load(sys.argv[1]), max_window_seconds=2.0)
items = [(speech_like(0.4, seed=1), 44100), (voiced_signal(2.6, seed=2), 44100),
         (np.stack([speech_like(0.5, seed=3), voiced_signal(0.5, seed=4)], axis=1), 44100)]
packer = BatchedRestoration(restorer, batch_size=4)
worst = 0.0
for (audio, rate), batched in zip(items, restorer.restore_many(items, batch_size=4)):
    alone = restorer.restore_full(audio, rate)
    worst = max(worst, float(np.max(np.abs(batched.audio - alone.audio))
                             / np.max(np.abs(alone.audio))))
print(json.dumps({"devices": len(packer.rows.mesh.devices.flat), "worst": worst}))
