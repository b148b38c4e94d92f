"""Local stand-ins of the Google Cloud APIs the runbook calls (see ``google.py``)."""
