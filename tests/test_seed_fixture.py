"""The `seed` fixture of tests/conftest.py: fresh by default, a function of (session seed, test) so that
``A3D_TEST_SEED`` replays a run, and a failing test's report names its seed and the replay command."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import conftest

TESTS = Path(__file__).resolve().parent


def test_seed_is_derived_from_the_session_and_the_test(seed, request):
    session = request.config.a3d_session_seed
    assert seed == conftest.derive_test_seed(session, request.node.nodeid)
    assert os.environ[conftest.SEED_ENV] == str(session)  # subprocesses and workers share the session
    assert 0 <= seed < 2**31
    others = {conftest.derive_test_seed(session, f"tests/test_x.py::test_{i}") for i in range(100)}
    assert len(others) == 100 and conftest.derive_test_seed(session + 1, request.node.nodeid) != seed


def test_session_seed_from_the_environment(monkeypatch):
    monkeypatch.setenv(conftest.SEED_ENV, " 1234 ")
    assert conftest._session_seed() == 1234
    monkeypatch.setenv(conftest.SEED_ENV, "random")
    draws = {conftest._session_seed() for _ in range(4)}
    assert len(draws) > 1 and all(0 <= d < 2**31 for d in draws)
    monkeypatch.delenv(conftest.SEED_ENV)
    assert 0 <= conftest._session_seed() < 2**31
    monkeypatch.setenv(conftest.SEED_ENV, "12a")
    with pytest.raises(pytest.UsageError, match="A3D_TEST_SEED"):
        conftest._session_seed()


def test_a_failure_names_its_seed_and_the_replay(tmp_path):
    (tmp_path / "test_draws.py").write_text("def test_draws(seed):\n    print('drew', seed)\n    assert seed < 0\n\n"
                                            "def test_plain():\n    assert 1 == 2\n")
    session = 987654
    env = {**os.environ, conftest.SEED_ENV: str(session), "PYTHONPATH": str(TESTS)}
    run = subprocess.run([sys.executable, "-m", "pytest", "-p", "conftest", "-ra", "-p", "no:cacheprovider",
                          "--rootdir", str(tmp_path), "-c", os.devnull, "test_draws.py"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    out = run.stdout
    assert run.returncode == 1, out + run.stderr
    expected = conftest.derive_test_seed(session, "test_draws.py::test_draws")
    assert f"drew {expected}" in out  # the replayed session gives the test the same seed
    assert f"{conftest.SEED_ENV}={session} (set it to replay" in out  # the header
    section = re.search(r"-+ seed -+\n(.*)\n", out)
    assert section and section.group(1) == (f"seed {expected} of session {session}: replay with "
                                            f"{conftest.SEED_ENV}={session} pytest 'test_draws.py::test_draws'")
    assert f"FAILED test_draws.py::test_draws - [{conftest.SEED_ENV}={session}] assert {expected} < 0" in out
    assert "FAILED test_draws.py::test_plain - assert 1 == 2" in out  # a test without the fixture: as before
    assert out.count("-- seed --") == 1
