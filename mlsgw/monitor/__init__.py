"""Cloud Monitoring as code: the runbook's alert rules (``config/alerts.yaml``), their uptime
check and the primary dashboard, compared with and applied to a project (R-K8, R-K8b)."""
