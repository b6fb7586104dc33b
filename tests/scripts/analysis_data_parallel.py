"""Three analysis training steps of a small VF-BiGRU on one device, jit over 8
simulated CPU devices, and pmap over them, from the same state and global
batch; prints their largest parameter differences as JSON
(``tests/training/test_train_step.py``)."""

import json
import os
import sys

import jax

jax.config.update("jax_num_cpu_devices", 8)
TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [TESTS, os.path.dirname(TESTS)]   # tests/ (helpers) and the repository

import numpy as np  # noqa: E402

from vf_jax.audio.synthetic import training_batch  # noqa: E402
from vf_jax.training import parallel  # noqa: E402
from vf_jax.training.analysis import step as ts  # noqa: E402

from helpers import analysis_config  # noqa: E402

config = analysis_config("bigru")
# A large epsilon keeps Adam from turning rounding-level gradients into whole
# steps of opposite sign, so parameters compare closely.
config.eps = 1.0
batch = training_batch(8)
init = ts.init_state(config, jax.random.PRNGKey(0))


def run(devices):
    mesh = parallel.make_mesh(jax.devices()[:devices])
    step = ts.jit_step(config, mesh)
    state = parallel.place_replicated(jax.tree_util.tree_map(lambda x: x.copy(), init), mesh)
    for _ in range(3):
        state, m = step(state, parallel.global_batch(batch, mesh))
    return state, float(m["loss"])


def diff(a, b):
    return max(float(np.max(np.abs(np.asarray(x) - np.asarray(y))))
               for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)))


one, loss_one = run(1)
eight, loss_eight = run(8)
pstep = ts.pmap_step(config)
state = parallel.replicate(init)
local = {k: v.reshape(8, 1, *v.shape[1:]) for k, v in batch.items()}
for _ in range(3):
    state, m = pstep(state, local)
pm = jax.tree_util.tree_map(lambda x: x[0], state)
print(json.dumps({"devices": len(jax.devices()),
                  "jit8": diff(one.params, eight.params),
                  "pmap": diff(one.params, pm.params),
                  "stats_pmap": diff(one.batch_stats, pm.batch_stats),
                  "loss": [loss_one, loss_eight, float(m["loss"][0])]}))
