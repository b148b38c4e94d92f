"""Incident notices (R-K9): severities, the runbook's templates, timelines from the ledger."""
