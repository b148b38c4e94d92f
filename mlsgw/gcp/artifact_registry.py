""":class:`~mlsgw.gcp.artifacts.RegistryApi` over ``google-cloud-artifact-registry``."""

from __future__ import annotations

from urllib.parse import quote

from google.api_core import exceptions as api
from google.cloud import artifactregistry_v1

from mlsgw.gcp.artifacts import ImageRef
from mlsgw.gcp.errors import vendor_errors


class ArtifactRegistryAdapter:
    """Tags and versions of Docker packages."""

    def __init__(self, client: artifactregistry_v1.ArtifactRegistryClient, *, timeout: float):
        self._client = client
        self._timeout = timeout

    def digest_of(self, image: ImageRef) -> str | None:
        """A digest is looked up as a version, a tag resolved to its version; ``None`` when
        either is gone."""
        package = f"{image.repository_name}/packages/{quote(image.package, safe='')}"
        what = f"look up {image.host_path} in Artifact Registry"
        with vendor_errors(what, "artifactregistry.versions.get"):
            try:
                if image.digest:
                    self._client.get_version(
                        name=f"{package}/versions/{image.digest}", timeout=self._timeout
                    )
                    return image.digest
                tag = self._client.get_tag(
                    name=f"{package}/tags/{image.tag}", timeout=self._timeout
                )
            except api.NotFound:
                return None
        return tag.version.rsplit("/", 1)[-1] or None
