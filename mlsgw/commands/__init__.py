"""One module per command; :mod:`mlsgw.cli` composes them."""
