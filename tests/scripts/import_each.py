"""Import each vf_jax module named on the command line in a process of its
own, as if it came first. Prints one line per module that fails; exits 1 if
any did.

The third-party libraries are imported once, here; each module is then
imported in a forked child, which starts with no vf_jax module loaded (a
module imported twice in one process would register its TFDS datasets twice)."""

import importlib
import os
import pathlib
import sys
import traceback

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))   # the repository

for library in ("numpy", "scipy.signal", "jax", "flax.linen", "optax", "ml_collections",
                "soundfile", "tensorflow_datasets", "grain"):
    importlib.import_module(library)

failed = False
for name in sys.argv[1:]:
    child = os.fork()
    if child == 0:
        try:
            importlib.import_module(name)
        except BaseException as e:
            print(f"{name}: {type(e).__name__}: {e}", flush=True)
            traceback.print_exc()
            os._exit(1)
        os._exit(0)
    _, status = os.waitpid(child, 0)
    failed |= status != 0
sys.exit(1 if failed else 0)
