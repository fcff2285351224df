"""The ARKit GLB in three.js: headless Chromium loads a GLB written by a3d.animation.gltf with GLTFLoader,
reads its 52 morph target names, and plays ``jawOpen`` with an AnimationMixer; the rendered head changes.

Needs Debian's chromium, Playwright and the npm ``three`` pinned in tests/viewers (``make test`` installs them);
skips otherwise, saying what is missing."""
from __future__ import annotations

import functools
import http.server
import threading
from pathlib import Path

import pytest

from test_viewer_browser import CHROMIUM, CHROMIUM_ARGS, VIEWERS, _Handler, _missing

pytestmark = pytest.mark.browser

if _missing():
    pytest.skip(f"needs {', '.join(_missing())}; `make test` installs them", allow_module_level=True)

from playwright.sync_api import sync_playwright  # noqa: E402


def _head_glb(path: Path) -> tuple[str, ...]:
    """The morphable head's mean (outer surface, grey) with the basis's own 52 actions as targets."""
    from a3d.animation.bind import bindable_faces
    from a3d.animation.gltf import write_glb
    from a3d.data.head_basis import load_head_basis

    b = load_head_basis()
    faces = b.faces[bindable_faces(b)].numpy()
    colors = 0.4 + 0.4 * (b.regions[:, b.region("lips")] > 0.5).float()[:, None].expand(-1, 3).numpy()
    targets = {n: b.expr_basis[i].numpy() for i, n in enumerate(b.expressions)}
    write_glb(path, b.mean.numpy(), faces, colors, targets)
    return b.expressions


def test_three_js_plays_an_arkit_morph_target(tmp_path):
    names = _head_glb(tmp_path / "head.glb")
    handler = functools.partial(type("Handler", (_Handler,), {"files_dir": tmp_path, "supersplat_dir": tmp_path}),
                                directory=str(VIEWERS))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page()
                errors: list[str] = []
                page.on("pageerror", lambda e: errors.append(str(e)))
                page.goto(f"http://127.0.0.1:{httpd.server_address[1]}/gltf_morph.html?src=/files/head.glb"
                          f"&target=jawOpen")
                page.wait_for_function("window.viewerReady === true || window.viewerError !== undefined",
                                       timeout=120_000)
                assert page.evaluate("window.viewerError") is None, page.evaluate("window.viewerError")
                result = page.evaluate("window.result")
            finally:
                browser.close()
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert not errors, errors
    assert tuple(result["names"]) == names and len(names) == 52  # ARKit's names, in order
    assert result["influence"] > 0.99  # the clip drove the target
    assert result["drawn"] > 2000  # the head is on screen
    assert result["changed"] > 100, result  # and the open jaw changed it
