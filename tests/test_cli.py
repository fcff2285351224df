"""The command line's shape: ``a3d --help`` stays light, and each subcommand's flags are built on demand.

The subcommands themselves are exercised beside the code they drive (test_api, test_render, test_synth,
test_train)."""
from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from a3d.cli import COMMANDS, build_parser, main

REPO = Path(__file__).resolve().parents[1]

# Run `python -m a3d ARGS` (what the `a3d` script runs) and report which modules it loaded.
_PROBE = """
import json, runpy, sys
code = None
try:
    runpy.run_module("a3d", run_name="__main__", alter_sys=True)
except SystemExit as e:
    code = e.code
print(json.dumps({"code": code, "modules": sorted(sys.modules)}))
"""


def _help_run(*args: str) -> tuple[int, set[str], str]:
    """Exit code, loaded modules and printed text of ``python -m a3d ARGS`` in a fresh interpreter."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    r = subprocess.run([sys.executable, "-c", _PROBE, *args], cwd=REPO, env=env, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    *printed, last = r.stdout.strip().splitlines()
    out = json.loads(last)
    return out["code"], set(out["modules"]), "\n".join(printed)


def test_top_level_help_imports_no_model_trainer_or_generator():
    code, modules, text = _help_run("--help")
    assert code == 0
    assert all(name in text for name in COMMANDS), text
    heavy = {"a3d.model.network", "a3d.train.loop", "a3d.data.synth", "a3d.api", "torch"} & modules
    # torch alone takes seconds to import; the help of a command line should not wait for it
    assert not heavy, f"`a3d --help` imported {sorted(heavy)}"


def test_a_subcommand_help_builds_only_its_own_flags():
    code, modules, text = _help_run("render", "--help")
    assert code == 0 and "--frames" in text
    assert not {"a3d.model.network", "a3d.train.loop", "a3d.data.synth"} & modules


def test_flags_exist_only_for_the_command_parsed():
    args = build_parser("render").parse_args(["render", "head.ply", "--fps", "12"])
    assert (args.command, args.ply, args.fps, args.frames) == ("render", "head.ply", 12, 120)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["render", "head.ply", "--fps", "12"])


def test_every_command_resolves_to_a_function(capsys):
    for name, spec in COMMANDS.items():
        module, function = spec.run.split(":")
        assert callable(getattr(importlib.import_module(module), function)), name
    assert main(["info"]) == 0
    assert "a3d " in capsys.readouterr().out
