"""``python -m a3d.train ...`` / ``torchrun --nproc_per_node=N -m a3d.train ...``: the same command as
``a3d train`` (one-line errors, exit codes, --debug)."""
import sys

from ..cli import main

sys.exit(main(["train", *sys.argv[1:]]))
