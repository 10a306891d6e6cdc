import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    """Small MLPs run fastest on one thread, and CI machines have two cores."""
    torch.set_num_threads(1)


@pytest.fixture(autouse=True, scope="session")
def _ctrl_c_as_in_a_terminal():
    """A shell starts background jobs (``pytest &``) with SIGINT ignored, and Python then never raises
    KeyboardInterrupt: give the Ctrl-C tests the terminal's behaviour wherever the suite was started."""
    import signal

    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
