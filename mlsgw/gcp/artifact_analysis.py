""":class:`~mlsgw.gcp.artifacts.VulnerabilityApi` over the Grafeas client that
``google-cloud-containeranalysis`` (Artifact Analysis) is built on."""

from __future__ import annotations

from grafeas import grafeas_v1

from mlsgw.gcp.artifacts import Vulnerability
from mlsgw.gcp.errors import vendor_errors


class ArtifactAnalysisAdapter:
    """Vulnerability occurrences of an image."""

    def __init__(self, client: grafeas_v1.GrafeasClient, *, timeout: float) -> None:
        self._client = client
        self._timeout = timeout

    def vulnerabilities(self, project: str, resource_url: str) -> list[Vulnerability]:
        """Every ``VULNERABILITY`` occurrence filed for ``resource_url``."""
        request = {
            "parent": f"projects/{project}",
            "filter": f'kind="VULNERABILITY" AND resourceUrl="{resource_url}"',
            "page_size": 500,
        }
        with vendor_errors(
            f"list vulnerabilities of {resource_url}", "containeranalysis.occurrences.list"
        ):
            found = list(self._client.list_occurrences(request=request, timeout=self._timeout))
        out = []
        for occurrence in found:
            v = occurrence.vulnerability
            severity = v.effective_severity or v.severity
            packages = sorted({i.affected_package for i in v.package_issue if i.affected_package})
            out.append(
                Vulnerability(
                    id=v.short_description or occurrence.note_name.rsplit("/", 1)[-1],
                    severity=grafeas_v1.Severity(severity).name,
                    package=", ".join(packages),
                    fix_available=bool(v.fix_available),
                )
            )
        return out
