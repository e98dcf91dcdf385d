"""``python -m autoopt.cli``."""

from autoopt.cli import main

main()
