"""End to end: demo/app.py served on 127.0.0.1 and driven in headless Chromium (Debian's chromium
package through Playwright; nothing here downloads a browser). `bash demo/ci_setup.sh` installs
what these tests need; without it they are skipped, saying what is missing.

The server runs with A3D_DEMO_RANDOM_INIT=1 (tests only): until trained weights are installed, a
random-init tiny model exercises the whole pipeline (preprocessing, network, export, rendering).
A screenshot of the finished page goes to the test's tmp_path and, if A3D_SCREENSHOT_DIR is set, there.
"""
from __future__ import annotations

import importlib.util
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from io import BytesIO
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
EXAMPLE = REPO / "demo" / "examples" / "astronaut.jpg"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
NOT_AN_IMAGE = "not an image a3d can read"  # demo/app.py's message, as the page shows it


def _missing() -> list[str]:
    missing = [] if os.access(CHROMIUM, os.X_OK) else [f"Debian's chromium ({CHROMIUM})"]
    missing += [f"the python package {m!r}" for m in ("playwright", "gradio") if importlib.util.find_spec(m) is None]
    return missing


if _missing():
    pytest.skip(f"needs {', '.join(_missing())}; `bash demo/ci_setup.sh` installs them", allow_module_level=True)

from playwright.sync_api import expect, sync_playwright  # noqa: E402

from a3d.io.ply import load_ply  # noqa: E402
from a3d.io.video import mp4_box_order  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _alive(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status == 200
    except OSError:
        return False


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """`python demo/app.py` on a free port of 127.0.0.1, its temp files in a folder of its own."""
    tmp = tmp_path_factory.mktemp("demo_server")
    port = _free_port()
    env = dict(os.environ, A3D_DEMO_RANDOM_INIT="1", A3D_DEMO_DEVICE="cpu", TMPDIR=str(tmp),
               GRADIO_TEMP_DIR=str(tmp / "gradio"), GRADIO_ANALYTICS_ENABLED="False", PYTHONUNBUFFERED="1")
    log_path = tmp / "server.log"
    log = open(log_path, "w")
    proc = subprocess.Popen([sys.executable, str(REPO / "demo" / "app.py"), "--host", "127.0.0.1", "--port", str(port)],
                            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 180
    try:
        while not _alive(url):
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the demo did not start (exit code {proc.poll()}):\n{log_path.read_text()[-4000:]}")
            time.sleep(1)
        yield {"url": url, "proc": proc, "log": log_path, "tmp": tmp}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser, server):
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    pg = context.new_page()
    pg.set_default_timeout(30_000)
    pg.goto(server["url"])
    expect(pg.get_by_role("button", name="Reconstruct", exact=True)).to_be_enabled()
    yield pg
    context.close()


def _screenshot(pg, tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    pg.screenshot(path=str(path), full_page=True)
    if os.environ.get("A3D_SCREENSHOT_DIR"):
        out = Path(os.environ["A3D_SCREENSHOT_DIR"])
        out.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, out / name)
    return path


def _download(page, name: str, folder: Path) -> Path:
    """Fetch the file that the page's download link ``name`` points to into ``folder``."""
    link = page.locator(f'#downloads a[download="{name}"]')
    expect(link).to_be_visible()
    response = page.request.get(link.get_attribute("href"))
    assert response.ok, f"{name}: HTTP {response.status}"
    path = folder / name
    path.write_bytes(response.body())
    return path


def _png_has_content(png: bytes) -> bool:
    """Whether a screenshot shows more than one flat colour (an empty canvas is flat)."""
    from io import BytesIO

    from PIL import Image

    a = np.asarray(Image.open(BytesIO(png)).convert("RGB"), dtype=np.float32)
    return float(a.std(axis=(0, 1)).max()) > 5.0


def test_example_portrait_end_to_end(page, server, tmp_path):
    page.locator("#portrait input[type=file]").set_input_files(str(EXAMPLE))
    expect(page.locator("#portrait img").first).to_be_visible()
    page.get_by_role("button", name="Reconstruct", exact=True).click()

    # The turntable: a playable MP4 served by the app.
    video = page.locator("#turntable video")
    expect(video).to_have_attribute("src", re.compile(r".+\.mp4"), timeout=150_000)
    src = video.get_attribute("src")
    body = page.request.get(src).body()
    assert len(body) > 1000 and body[4:8] == b"ftyp", f"turntable at {src} is not an MP4 ({len(body)} bytes)"
    (tmp_path / "orbit.mp4").write_bytes(body)
    boxes = mp4_box_order(tmp_path / "orbit.mp4")
    assert boxes.index("moov") < boxes.index("mdat"), f"no fast start (the browser cannot seek while loading): {boxes}"
    duration = page.wait_for_function(
        "v => v.readyState >= 1 && v.duration > 0 ? v.duration : null", arg=video.element_handle(), timeout=30_000
    ).json_value()
    assert duration > 0.5

    # The interactive 3D views draw the splat and the mesh (GLB) into their canvases.
    boxes = {}
    for sel in ("#splat-view", "#mesh-view"):
        canvas = page.locator(f"{sel} canvas").first
        expect(canvas).to_be_visible()
        box = boxes[sel] = canvas.bounding_box()
        assert box["width"] > 100 and box["height"] > 100
        drawn = False
        for _ in range(20):  # the viewer loads the file, then draws
            if _png_has_content(page.screenshot(clip=box)):  # no wait for "stable": the viewer keeps drawing
                drawn = True
                break
            time.sleep(1)
        assert drawn, f"the 3D view {sel} stayed blank"
    # The splat on the turntable's background (white), not gsplat.js's default black: the corners show it.
    view = np.asarray(Image.open(BytesIO(page.screenshot(clip=boxes["#splat-view"]))).convert("RGB"), dtype=np.int16)
    for corner in (view[2, 2], view[2, -3], view[-3, 2], view[-3, -3]):
        assert np.abs(corner - 255).max() <= 8, f"the 3D view's background is {corner.tolist()}, not white"

    # Grid and timings.
    expect(page.locator("#grid img").first).to_be_visible()
    timings = page.locator("#timings").inner_text()
    for stage in ("preprocess", "inference", "render turntable", "total"):
        assert stage in timings, f"no {stage!r} row in the timings table:\n{timings}"

    # Download the PLY the page links to and read it back with the library. The file is fetched from the
    # link's address rather than by a click: with two software-rendered WebGL views drawing, a click can wait
    # on the busy page for longer than the timeout on a loaded machine.
    ply = _download(page, "head.ply", tmp_path)
    g = load_ply(ply)
    n = int(re.search(r"([\d,]+) Gaussians", page.locator("#summary").inner_text()).group(1).replace(",", ""))
    assert g.means.shape == (n, 3) and n > 0
    assert torch.isfinite(g.means).all() and (g.opacities > 0).all() and (g.scales > 0).all()
    for name in ("head.splat", "a3d_cameras.json"):
        expect(page.locator(f'#downloads a[download="{name}"]')).to_be_visible()

    # The mesh downloads as a GLB that an independent reader (trimesh) loads watertight.
    import trimesh  # a runtime dependency of a3d: missing is a broken install, not a skip
    mesh = trimesh.load(_download(page, "head.glb", tmp_path), force="mesh", process=False)
    mesh.merge_vertices(merge_tex=True, merge_norm=True)  # textured: a vertex per face corner in the file
    assert len(mesh.faces) > 1000 and mesh.is_watertight

    shot = _screenshot(page, tmp_path, "demo_result.png")
    assert shot.stat().st_size > 10_000


def test_refuses_files_that_are_not_images_or_too_big(page, server, tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("a shopping list, not a portrait\n")
    # The browser refuses the .txt by its type, with a message in the page.
    page.locator("#portrait input[type=file]").set_input_files(str(text))
    expect(page.get_by_text("Invalid file type", exact=False).first).to_be_visible()

    # Over the upload limit: refused before it reaches the app.
    big = tmp_path / "huge.jpg"
    big.write_bytes(os.urandom(11 * 2**20))
    page.locator("#portrait input[type=file]").set_input_files(str(big))
    expect(page.get_by_text("maximum allowed size", exact=False).first).to_be_visible()

    # A text file named like an image passes the browser's check; the server refuses it with the demo's message.
    disguised = tmp_path / "portrait.png"
    disguised.write_text("still not a portrait\n")
    page.locator("#portrait input[type=file]").set_input_files(str(disguised))
    page.get_by_role("button", name="Reconstruct", exact=True).click()
    expect(page.get_by_text(NOT_AN_IMAGE, exact=False).first).to_be_visible(timeout=60_000)
    _screenshot(page, tmp_path, "demo_refused.png")

    # The failed request did not take the server down.
    assert server["proc"].poll() is None and _alive(server["url"])
