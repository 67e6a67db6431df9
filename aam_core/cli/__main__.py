"""``python -m aam_core.cli``: the ``aam`` command without its console script."""

from aam_core.cli import main

main()
