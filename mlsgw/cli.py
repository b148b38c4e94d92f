"""The ``mlsgw`` command line: composes the command modules, nothing else."""

from __future__ import annotations

from mlsgw.commands import alerts as alerts_cmd
from mlsgw.commands import audit as audit_cmd
from mlsgw.commands import backup as backup_cmd
from mlsgw.commands import certcheck as certcheck_cmd
from mlsgw.commands import config as config_cmd
from mlsgw.commands import deploy as deploy_cmd
from mlsgw.commands import healthcheck as healthcheck_cmd
from mlsgw.commands import incident as incident_cmd
from mlsgw.commands import ledger as ledger_cmd
from mlsgw.commands import lockdown as lockdown_cmd
from mlsgw.commands import maintenance as maintenance_cmd
from mlsgw.commands import modes as modes_cmd
from mlsgw.commands import playbook as playbook_cmd
from mlsgw.commands import restore as restore_cmd
from mlsgw.commands import rollback as rollback_cmd
from mlsgw.commands.usage import MlsgwCommand
from mlsgw.main import main, new_app

# `main` stays importable from here for console scripts installed before the entry point
# moved to mlsgw.main (an editable install that was not reinstalled after a pull).
__all__ = ["app", "main"]

app = new_app()
app.add_typer(config_cmd.app, name="config")
app.command("healthcheck", cls=MlsgwCommand)(healthcheck_cmd.healthcheck)
app.command("rollback", cls=MlsgwCommand)(rollback_cmd.rollback)
app.command("traffic", cls=MlsgwCommand)(rollback_cmd.traffic)
app.command("restart", cls=MlsgwCommand)(rollback_cmd.restart)
app.command("deploy", cls=MlsgwCommand)(deploy_cmd.deploy)
app.command("scale", cls=MlsgwCommand)(deploy_cmd.scale)
app.command("lockdown", cls=MlsgwCommand)(lockdown_cmd.lockdown)
app.command("audit", cls=MlsgwCommand)(audit_cmd.audit)
app.command("certcheck", cls=MlsgwCommand)(certcheck_cmd.certcheck)
app.command("readonly", cls=MlsgwCommand)(modes_cmd.readonly)
app.command("maintenance-mode", cls=MlsgwCommand)(modes_cmd.maintenance_mode)
app.add_typer(incident_cmd.app, name="incident")
app.add_typer(ledger_cmd.app, name="ledger")
app.add_typer(backup_cmd.app, name="backup")
app.command("restore", cls=MlsgwCommand)(restore_cmd.restore)
app.add_typer(playbook_cmd.app, name="playbook")
app.add_typer(alerts_cmd.app, name="alerts")
app.add_typer(alerts_cmd.dashboard_app, name="dashboard")
app.add_typer(maintenance_cmd.app, name="maintenance")
app.command("schedule", cls=MlsgwCommand)(maintenance_cmd.schedule)
