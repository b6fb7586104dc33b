import sys

from vf_jax.cli import main

sys.exit(main())
