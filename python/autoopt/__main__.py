"""``python -m autoopt``: the ``autoopt`` command, for environments whose scripts folder is not
on PATH (and to be sure which interpreter's autoopt runs)."""

from autoopt.cli import main

main()
