"""``python -m qudata``: the command-line interface."""

from qudata.cli import main

main()
