"""``python -m a3d``: the same command line as the ``a3d`` script (a3d/cli.py)."""
import sys

from .cli import main

sys.exit(main())
