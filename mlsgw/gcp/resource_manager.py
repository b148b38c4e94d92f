"""Resource Manager v3 adapter (``google-cloud-resource-manager``): the project IAM policy."""

from __future__ import annotations

from google.cloud import resourcemanager_v3
from google.iam.v1 import iam_policy_pb2, policy_pb2

from mlsgw.gcp.base import Binding, IamPolicy
from mlsgw.gcp.errors import vendor_errors


def _policy(raw: policy_pb2.Policy) -> IamPolicy:
    return IamPolicy(
        bindings=tuple(Binding(b.role, tuple(b.members)) for b in raw.bindings),
        etag=bytes(raw.etag),
        version=int(raw.version),
    )


class ProjectsAdapter:
    """:class:`mlsgw.gcp.base.ProjectsApi` over ``resourcemanager_v3.ProjectsClient``."""

    def __init__(self, client: resourcemanager_v3.ProjectsClient, *, timeout: float) -> None:
        self._client = client
        self._timeout = timeout

    def get_iam_policy(self, project: str) -> IamPolicy:
        """The project's IAM policy, conditional bindings included (policy version 3)."""
        request = iam_policy_pb2.GetIamPolicyRequest(
            resource=f"projects/{project}",
            options={"requested_policy_version": 3},
        )
        with vendor_errors(
            f"read the IAM policy of project {project}", "resourcemanager.projects.getIamPolicy"
        ):
            raw = self._client.get_iam_policy(request=request, timeout=self._timeout)
        return _policy(raw)
