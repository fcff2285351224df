"""Markers: `cuda` tests need a GPU (skipped without one; on a GPU machine a missing CUDA build FAILS
them, so a broken build cannot pass as skipped); `browser` tests drive headless Chromium."""
import random

import pytest
import torch


def pytest_configure(config):
    config.addinivalue_line("markers", "cuda: needs a CUDA device and the CUDA build of a3d._C")
    config.addinivalue_line("markers", "browser: drives the Gradio demo in headless Chromium")


def pytest_runtest_setup(item):
    if item.get_closest_marker("cuda") is None:
        return
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    from a3d.core import ops

    if not ops.has_kernel("plucker_rays", "cuda"):
        pytest.fail(f"CUDA device present but a3d._C has no CUDA kernels (extension: {ops.extension_error()}); "
                    "build with `pip install --no-build-isolation -e .` on this machine")


@pytest.fixture
def seed():
    """A fresh seed each run (inputs must differ run to run), printed so a failure can be replayed."""
    s = random.SystemRandom().randrange(2**31 - 1)
    print(f"seed={s}")
    return s
