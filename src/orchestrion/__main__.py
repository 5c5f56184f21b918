"""``python -m orchestrion``."""

from orchestrion.cli import main

main()
