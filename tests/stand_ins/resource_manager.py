"""A stand-in of Resource Manager v3 projects over REST: ``POST /v3/projects/P:getIamPolicy``.

A project the stand-in does not know answers 403 as Google does for a project that does not
exist or is not visible (``resourcemanager.projects.getIamPolicy`` denied).
"""

from __future__ import annotations

import base64
import copy
import re

from tests.stand_ins.rest import Json, RestServer, permission_denied


class ResourceManagerStandIn:
    """Project IAM policies (``{"bindings": [{"role", "members"}], "etag", "version"}``)."""

    def __init__(self, server: RestServer) -> None:
        self.policies: dict[str, Json] = {}
        server.route("POST", r"/v3/projects/(?P<project>[^/:]+):getIamPolicy", self._get_iam)

    def set_policy(self, project: str, bindings: dict[str, list[str]]) -> None:
        """Give ``project`` a policy: role -> members."""
        self.policies[project] = {
            "version": 1,
            "etag": base64.b64encode(f"etag-{project}".encode()).decode(),
            "bindings": [{"role": role, "members": members} for role, members in bindings.items()],
        }

    def _get_iam(self, m: re.Match[str], query: dict[str, str], body: Json) -> tuple[int, Json]:
        project = m["project"]
        if project not in self.policies:
            raise permission_denied("resourcemanager.projects.getIamPolicy", f"projects/{project}")
        return 200, copy.deepcopy(self.policies[project])
