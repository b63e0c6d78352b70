"""``python -m engine`` is the same as the ``glam`` command."""

from engine.cli.main import main

main()
