"""One GAN step of the small vocoder config from a pickled state (argv[1]),
jit over 8 simulated CPU devices and pmap over them; the results are pickled
to argv[2] (``tests/training/test_vocoder_training.py``)."""

import os
import pickle
import sys

import jax

jax.config.update("jax_num_cpu_devices", 8)
TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [TESTS, os.path.dirname(TESTS)]   # tests/ (helpers) and the repository

from vf_jax import compilation  # noqa: E402

from helpers import gan_step_on_devices, vocoder_config  # noqa: E402

compilation.enable_compilation_cache()
with open(sys.argv[1], "rb") as f:
    init = pickle.load(f)
result = gan_step_on_devices(vocoder_config(), init)
with open(sys.argv[2], "wb") as f:
    pickle.dump(result, f)
