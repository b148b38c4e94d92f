"""A Cloud Run service's IAM policy as a runbook resource (read-modify-write with its etag)."""

from __future__ import annotations

from mlsgw.gcp.base import CloudRunApi, IamPolicy


class ServiceIamPolicy:
    """:class:`~mlsgw.resources.base.Resource` over ``getIamPolicy`` / ``setIamPolicy``.

    The change is the whole new policy; :meth:`apply` writes it with the etag of the policy it
    was computed from, so a concurrent change is refused by the API and recomputed.
    """

    key = "iam_policy"
    kind = "IAM policy"

    def __init__(self, api: CloudRunApi, service_name: str) -> None:
        self.api = api
        self.service_name = service_name
        self.name = f"{service_name} (IAM policy)"

    def read(self) -> IamPolicy:
        """The policy with its etag."""
        return self.api.get_iam_policy(self.service_name)

    def summary(self, state: IamPolicy) -> object:
        """Bindings, version and etag (base64)."""
        return state.describe()

    def validate(self, state: IamPolicy, change: IamPolicy) -> str:
        """IAM has no dry run: the etag is checked by reading the policy again."""
        now = self.api.get_iam_policy(self.service_name)
        if now.etag != state.etag:
            return "the policy changed since it was read; the change will be recomputed"
        return "policy read again: unchanged since the plan (IAM has no server-side dry run)"

    def apply(self, state: IamPolicy, change: IamPolicy) -> IamPolicy:
        """``setIamPolicy`` carrying the etag of ``state``."""
        return self.api.set_iam_policy(
            self.service_name, IamPolicy(change.bindings, state.etag, change.version)
        )
