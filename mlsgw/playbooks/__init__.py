"""Executable playbooks (R-K11): ``playbooks/*.yaml`` loaded and validated against a schema
(:mod:`.schema`), with ``run: mlsgw …`` steps checked against the CLI (:mod:`.catalog`), and
run step by step (:mod:`.runner`)."""
