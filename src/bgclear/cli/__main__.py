"""``python -m bgclear.cli``."""

from . import main

main()
