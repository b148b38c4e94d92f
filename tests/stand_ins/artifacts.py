"""Stand-ins of Artifact Registry v1 (Docker package tags and versions) and Artifact Analysis
(Grafeas v1 ``occurrences.list``) over REST.

``add_image`` stores a package version (a digest) with its tags; ``add_vulnerability`` files a
``VULNERABILITY`` occurrence for an image. The occurrence filter supports exactly
``kind="VULNERABILITY" AND resourceUrl="…"``; anything else is a 400.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from tests.stand_ins.rest import ApiError, Json, RestServer

_PACKAGE = r"/v1/(projects/[^/]+/locations/[^/]+/repositories/[^/]+/packages/[^/]+)"
_FILTER = re.compile(r'^kind="VULNERABILITY" AND resourceUrl="([^"]+)"$')


def digest_of(text: str) -> str:
    """A deterministic ``sha256:…`` digest for a test image."""
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


class ArtifactsStandIn:
    """Docker images (``{package name: {digest, tags}}``) and vulnerability occurrences."""

    def __init__(self, server: RestServer) -> None:
        self.versions: dict[str, set[str]] = {}
        """Package resource name -> digests stored."""
        self.tags: dict[str, str] = {}
        """Tag resource name -> version resource name."""
        self.occurrences: list[Json] = []
        server.route("GET", _PACKAGE + r"/tags/([^/]+)", self._tag)
        server.route("GET", _PACKAGE + r"/versions/([^/]+)", self._version)
        server.route("GET", r"/v1/projects/([^/]+)/occurrences", self._occurrences)

    @staticmethod
    def _package(image: str) -> tuple[str, str]:
        host, project, repository, package = image.split("/", 3)
        location = host.removesuffix("-docker.pkg.dev")
        name = package.split("@")[0].split(":")[0]
        parent = f"projects/{project}/locations/{location}/repositories/{repository}"
        return f"{parent}/packages/{name.replace('/', '%2F')}", name

    def add_image(self, image: str, tags: tuple[str, ...] = ()) -> str:
        """Store ``image`` (``LOC-docker.pkg.dev/P/R/PKG``) with ``tags``; its digest."""
        package, _ = self._package(image)
        digest = digest_of(image + ",".join(tags))
        self.versions.setdefault(package, set()).add(digest)
        for tag in tags:
            self.tags[f"{package}/tags/{tag}"] = f"{package}/versions/{digest}"
        return digest

    def delete_image(self, image: str, digest: str) -> None:
        """Remove a version and the tags pointing at it (a cleanup policy did it)."""
        package, _ = self._package(image)
        self.versions.get(package, set()).discard(digest)
        version = f"{package}/versions/{digest}"
        self.tags = {t: v for t, v in self.tags.items() if v != version}

    def add_vulnerability(
        self,
        project: str,
        resource_url: str,
        cve: str,
        severity: str,
        package: str = "openssl",
        fix_available: bool = True,
    ) -> None:
        """A ``VULNERABILITY`` occurrence on ``resource_url``."""
        self.occurrences.append(
            {
                "name": f"projects/{project}/occurrences/{len(self.occurrences)}",
                "resourceUri": resource_url,
                "noteName": f"projects/goog-vulnz/notes/{cve}",
                "kind": "VULNERABILITY",
                "vulnerability": {
                    "severity": severity,
                    "effectiveSeverity": severity,
                    "shortDescription": cve,
                    "fixAvailable": fix_available,
                    "packageIssue": [{"affectedPackage": package}],
                },
            }
        )

    def _tag(self, m: re.Match[str], query: dict[str, str], body: Json) -> tuple[int, Json]:
        name = f"{m.group(1)}/tags/{m.group(2)}"
        if name not in self.tags:
            raise ApiError(404, f"Requested entity was not found: {name}")
        return 200, {"name": name, "version": self.tags[name]}

    def _version(self, m: re.Match[str], query: dict[str, str], body: Json) -> tuple[int, Json]:
        if m.group(2) not in self.versions.get(m.group(1), set()):
            raise ApiError(404, f"Requested entity was not found: {m.group(0)}")
        return 200, {"name": f"{m.group(1)}/versions/{m.group(2)}"}

    def _occurrences(self, m: re.Match[str], query: dict[str, str], body: Json) -> tuple[int, Json]:
        match = _FILTER.match(query.get("filter", ""))
        if not match:
            raise ApiError(400, f"stand-in cannot parse filter {query.get('filter')!r}")
        found: list[Any] = [
            o
            for o in self.occurrences
            if o["resourceUri"] == match.group(1)
            and o["name"].startswith(f"projects/{m.group(1)}/")
        ]
        size = int(query.get("pageSize") or 100)
        start = int(query.get("pageToken") or 0)
        page: Json = {"occurrences": found[start : start + size]}
        if start + size < len(found):
            page["nextPageToken"] = str(start + size)
        return 200, page
