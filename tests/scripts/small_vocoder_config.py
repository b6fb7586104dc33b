"""The tests' small vocoder config as a config file for ``python -m train.vocoder``."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))   # tests/

from helpers import vocoder_config  # noqa: E402


def get_config():
    return vocoder_config()
