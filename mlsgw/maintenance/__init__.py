"""The runbook's scheduled maintenance (R-K10): weekly, monthly and quarterly tasks, each a
small function ``RunContext -> CheckResult``, run one after the other into one report, and
the crontab lines that schedule them."""
