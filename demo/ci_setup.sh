#!/usr/bin/env bash
# Installs what the demo's tests (tests/test_demo_browser.py, tests/test_demo_app.py) need on a fresh
# Debian machine: Debian's chromium package (Playwright drives it; nothing downloads a browser) and
# the pinned gradio (the pin lives in demo/requirements.txt, the Space's file) and playwright.
#
#   bash demo/ci_setup.sh [BIN]    # BIN: the bin/ folder of the environment to install into
#                                  # (e.g. .venv/bin); default: the python3 on PATH
set -euo pipefail
cd "$(dirname "$0")/.."

PLAYWRIGHT_PIN="playwright==1.65.2"
if [ -n "${1:-}" ]; then PY="$1/python"; else PY="python3"; fi

if ! [ -x /usr/bin/chromium ]; then
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends chromium
fi

GRADIO_PIN="$(grep -E '^gradio==' demo/requirements.txt)"
# gradio pulls no torch; it caps pillow below 13, which a3d (pillow>=10) accepts.
"$PY" -m pip install -q "$GRADIO_PIN" "$PLAYWRIGHT_PIN"
"$PY" -c "import gradio, playwright; print('demo test deps: gradio', gradio.__version__)"
/usr/bin/chromium --version
