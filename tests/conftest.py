"""Markers: `cuda` tests need a GPU (skipped without one; on a GPU machine a missing CUDA build FAILS
them, so a broken build cannot pass as skipped); `browser` tests drive headless Chromium.

Random inputs: the `seed` fixture (below) gives each test its own seed, fresh every run and replayable with
``A3D_TEST_SEED``; a failing test's report shows its seed and the command that replays it.
"""
import hashlib
import os
import random

import pytest
import torch

from a3d.core.seeding import mix_seed

SEED_ENV = "A3D_TEST_SEED"
"""The session's seed: unset (or ``random``) for a fresh one each run, an integer to replay a run."""


def _session_seed() -> int:
    value = os.environ.get(SEED_ENV, "random").strip()
    if value.lower() == "random":
        return random.SystemRandom().randrange(2**31 - 1)
    try:
        return int(value)
    except ValueError:
        raise pytest.UsageError(f"{SEED_ENV}: expected an integer or 'random', got {value!r}") from None


def derive_test_seed(session_seed: int, nodeid: str) -> int:
    """The seed of test ``nodeid`` in a session of seed ``session_seed``: a function of the two only, so a
    test gets the same seed whichever other tests run with it (31 bits: every generator takes it)."""
    index = int.from_bytes(hashlib.sha256(nodeid.encode()).digest()[:8], "little")
    return mix_seed(session_seed, index, bits=31)


def pytest_configure(config):
    config.addinivalue_line("markers", "cuda: needs a CUDA device and the CUDA build of a3d._C")
    config.addinivalue_line("markers", "browser: drives the Gradio demo in headless Chromium")
    config.a3d_session_seed = _session_seed()
    # the same session seed for any worker or subprocess started from here
    os.environ[SEED_ENV] = str(config.a3d_session_seed)


def pytest_report_header(config):
    return f"{SEED_ENV}={config.a3d_session_seed} (set it to replay this run's random inputs)"


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
def seed(request) -> int:
    """This test's random seed: fresh every run by default, replayable.

    Kernels and their references must agree on fresh random inputs every run, so by default the session
    draws a new seed (``A3D_TEST_SEED`` unset or ``random``); each test's seed is derived from it and the
    test's node id (:func:`derive_test_seed`). The session seed is in pytest's header; a failing test that used this
    fixture gets a "seed" section in its report (beside the traceback, also with ``-q``), e.g.::

        ------ seed ------
        seed 1234567890 of session 42: replay with A3D_TEST_SEED=42 pytest 'tests/test_x.py::test_y'

    Setting ``A3D_TEST_SEED`` to an integer replays that session: every test gets the seed it had then. The
    seed is also recorded as the test's ``seed`` property (JUnit XML).
    """
    session = request.config.a3d_session_seed
    s = derive_test_seed(session, request.node.nodeid)
    request.node.a3d_seed = (s, session)
    request.node.user_properties.append(("seed", s))
    return s


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A failure of a test that drew the `seed` fixture names its seed and how to replay it."""
    outcome = yield
    report = outcome.get_result()
    drawn = getattr(item, "a3d_seed", None)
    if drawn is None or not report.failed:
        return
    s, session = drawn
    text = f"seed {s} of session {session}: replay with {SEED_ENV}={session} pytest '{item.nodeid}'"
    if hasattr(report.longrepr, "addsection"):
        report.longrepr.addsection("seed", text)
    else:  # a traceback kept as text: the report's own sections
        report.sections.append(("seed", text))
    crash = getattr(report.longrepr, "reprcrash", None)
    if crash is not None:  # the one line -ra prints: FAILED <test> - [A3D_TEST_SEED=<session>] <message>
        crash.message = f"[{SEED_ENV}={session}] {crash.message}"
