"""The Hugging Face Space as it runs there: the folder demo/make_space.sh assembles, started in a fresh virtual
environment that has no prebuilt a3d._C, compiles the kernels when it starts (a3d/core/_jit.py), and the example
uploaded in headless Chromium is rendered by those compiled kernels.

The virtual environment gets this interpreter's packages through a .pth file (so nothing is downloaded), and
nothing else: no .pth file of theirs runs, so the editable install of this checkout stays out of it, and
`import a3d` finds the Space's own copy beside app.py. The kernels compile into the session's JIT cache
(tests/test_jit.py's `jit_cache_dir`), so a session builds them once for both test modules.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import pytest

from test_demo_browser import CHROMIUM, CHROMIUM_ARGS, EXAMPLE, _alive, _free_port, _missing  # skips without a browser
from test_jit import jit_cache_dir, needs_compiler

from playwright.sync_api import expect, sync_playwright  # noqa: E402  (installed: test_demo_browser checked)

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[1]
START_TIMEOUT_S = 1200  # the first start compiles the kernels: about a minute on 2 idle cores, more when busy


def _requirements(path: Path) -> list[str]:
    return [line.split("#")[0].strip() for line in path.read_text().splitlines() if line.split("#")[0].strip()]


@pytest.fixture(scope="module")
def space(tmp_path_factory) -> dict:
    """The Space's folder and a virtual environment to run it in, checked to hold no prebuilt extension."""
    assert not _missing()
    needs_compiler()
    root = tmp_path_factory.mktemp("space")
    folder = root / "space"
    subprocess.run(["bash", str(REPO / "demo" / "make_space.sh"), str(folder)], check=True, capture_output=True)
    assert (folder / "packages.txt").read_text().split() == ["g++"]  # the Space's compiler
    assert (folder / "a3d" / "csrc" / "ops.cpp").is_file()
    assert not [p for p in folder.rglob("*") if p.suffix in (".so", ".pyd") or p.name.startswith("_C.")]

    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    ours = sorted({sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]})
    (Path(site) / "parent_packages.pth").write_text("".join(p + "\n" for p in ours))

    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "A3D_JIT", "A3D_BACKEND")}
    env.update(A3D_JIT_CACHE=str(jit_cache_dir(tmp_path_factory)), PYTHONUNBUFFERED="1", OMP_NUM_THREADS="2")
    # In the Space's environment: a3d is the copy beside app.py, a3d._C does not exist, and every requirement of
    # the Space's requirements.txt is met by what is installed (torch pinned to the version tested here).
    check = """
import importlib.metadata, importlib.util, sys
from packaging.requirements import Requirement
import a3d
print(a3d.__file__)
assert importlib.util.find_spec("a3d._C") is None, importlib.util.find_spec("a3d._C")
for line in sys.argv[1:]:
    req = Requirement(line)
    version = importlib.metadata.version(req.name)
    assert req.specifier.contains(version, prereleases=True), f"{line}: installed {version}"
"""
    r = subprocess.run([str(python), "-c", check, *_requirements(folder / "requirements.txt")], cwd=folder, env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-4000:]
    assert Path(r.stdout.split()[-1]) == folder / "a3d" / "__init__.py"
    return {"folder": folder, "python": python, "env": env, "tmp": root}


@pytest.fixture(scope="module")
def server(space):
    """`python app.py` of the Space, in its environment, on a free port of 127.0.0.1."""
    tmp = space["tmp"]
    port = _free_port()
    env = dict(space["env"], A3D_DEMO_DEVICE="cpu", TMPDIR=str(tmp), GRADIO_TEMP_DIR=str(tmp / "gradio"),
               GRADIO_ANALYTICS_ENABLED="False")
    log_path = tmp / "server.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen([str(space["python"]), "app.py", "--host", "127.0.0.1", "--port", str(port)],
                                cwd=space["folder"], env=env, stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}/"
        deadline = time.monotonic() + START_TIMEOUT_S
        try:
            while not _alive(url):
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"the Space did not start (exit code {proc.poll()}):\n{log_path.read_text()[-4000:]}")
                time.sleep(2)
            yield {"url": url, "proc": proc, "log": log_path}
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def test_space_renders_the_example_with_kernels_built_on_first_use(space, server, tmp_path):
    log = server["log"].read_text()
    cache = Path(space["env"]["A3D_JIT_CACHE"])
    line = next((x for x in log.splitlines() if x.startswith("a3d renders with")), None)
    assert line is not None, log[-4000:]
    assert "the compiled C++ kernels (built on first use)" in line, line
    assert Path(line.rsplit(": ", 1)[1]).parent.parent == cache, line  # the library lives in the JIT cache

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
            page.set_default_timeout(30_000)
            page.goto(server["url"])
            button = page.get_by_role("button", name="Reconstruct", exact=True)
            expect(button).to_be_enabled()
            page.locator("#portrait input[type=file]").set_input_files(str(EXAMPLE))
            expect(page.locator("#portrait img").first).to_be_visible()
            button.click()
            video = page.locator("#turntable video")
            expect(video).to_have_attribute("src", re.compile(r".+\.mp4"), timeout=300_000)
            body = page.request.get(video.get_attribute("src")).body()
            assert len(body) > 1000 and body[4:8] == b"ftyp"
            summary = page.locator("#summary").inner_text()
            assert "rendered by the compiled C++ kernels (built on first use)" in summary, summary
            page.screenshot(path=str(tmp_path / "space_result.png"), full_page=True)
        finally:
            browser.close()
    assert server["proc"].poll() is None
