"""The interface for container images: Artifact Registry (is an image still there?) and
Artifact Analysis (its vulnerability findings). Domain values and image references are
pure; the adapters are :mod:`mlsgw.gcp.artifact_registry` and :mod:`mlsgw.gcp.artifact_analysis`."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol

_AR = re.compile(
    r"^(?P<location>[a-z0-9-]+)-docker\.pkg\.dev/(?P<project>[^/]+)/(?P<repository>[^/]+)/"
    r"(?P<package>[^:@]+)(?::(?P<tag>[^@]+))?(?:@(?P<digest>sha256:[0-9a-f]{64}))?$"
)


@dataclass(frozen=True)
class ImageRef:
    """A Docker image in Artifact Registry: ``LOCATION-docker.pkg.dev/PROJECT/REPO/PKG``
    with a tag and/or a digest."""

    location: str
    project: str
    repository: str
    package: str
    tag: str | None
    digest: str | None

    @property
    def repository_name(self) -> str:
        """``projects/P/locations/L/repositories/R``."""
        return f"projects/{self.project}/locations/{self.location}/repositories/{self.repository}"

    @property
    def host_path(self) -> str:
        """``LOCATION-docker.pkg.dev/P/R/PKG`` (no tag or digest)."""
        return f"{self.location}-docker.pkg.dev/{self.project}/{self.repository}/{self.package}"

    def resource_url(self, digest: str) -> str:
        """The URL Artifact Analysis files the image's occurrences under."""
        return f"https://{self.host_path}@{digest}"


def parse_image(image: str) -> ImageRef | None:
    """The Artifact Registry reference of ``image``; ``None`` for images kept elsewhere
    (Docker Hub, ``gcr.io``), which cannot be checked here. A bare name is tagged ``latest``."""
    match = _AR.match(image.strip())
    if not match:
        return None
    parts = match.groupdict()
    tag = parts["tag"] or (None if parts["digest"] else "latest")
    return ImageRef(
        parts["location"],
        parts["project"],
        parts["repository"],
        parts["package"],
        tag,
        parts["digest"],
    )


@dataclass(frozen=True)
class Vulnerability:
    """One vulnerability occurrence on an image."""

    id: str
    """The CVE (or other) id."""
    severity: str
    """``CRITICAL``, ``HIGH``, ``MEDIUM``, ``LOW``, ``MINIMAL`` or ``SEVERITY_UNSPECIFIED``."""
    package: str
    fix_available: bool


class RegistryApi(Protocol):
    """Artifact Registry: whether images exist, and their digests."""

    def digest_of(self, image: ImageRef) -> str | None:
        """The image's digest (a tag resolved), or ``None`` when it is no longer stored."""
        ...


class VulnerabilityApi(Protocol):
    """Artifact Analysis (Container Analysis / Grafeas) occurrences."""

    def vulnerabilities(self, project: str, resource_url: str) -> list[Vulnerability]:
        """The vulnerability occurrences filed for ``resource_url`` in ``project``."""
        ...
