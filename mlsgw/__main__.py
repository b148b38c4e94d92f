"""``python -m mlsgw``."""

from mlsgw.cli import main

main()
