import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    """Small MLPs run fastest on one thread, and CI machines have two cores."""
    torch.set_num_threads(1)
