"""``python -m mlsgw``."""

from mlsgw.main import main

main()
