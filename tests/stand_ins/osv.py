"""A stand-in of the OSV API (``POST /v1/query``) for real pip-audit runs over loopback.

Every package is clean unless the test plants a vulnerability for it with :meth:`add_vuln`.
"""

from __future__ import annotations

import re

from tests.stand_ins.rest import Json, RestServer


class OsvStandIn:
    """Vulnerabilities by canonical package name; the server records every query."""

    def __init__(self) -> None:
        self.server = RestServer()
        self.vulns: dict[str, list[Json]] = {}
        self.server.route("POST", r"/v1/query", self._query)

    @property
    def url(self) -> str:
        """The query URL to pass as ``--osv-url``."""
        return self.server.url + "/v1/query"

    def add_vuln(self, package: str, vuln_id: str, fixed: str) -> None:
        """``package`` (any installed version) is affected by ``vuln_id``, fixed in ``fixed``."""
        self.vulns.setdefault(package, []).append(
            {
                "id": vuln_id,
                "summary": "planted by the test",
                "aliases": [f"CVE-2026-{len(self.vulns):04d}"],
                "affected": [
                    {
                        "package": {"name": package, "ecosystem": "PyPI"},
                        "ranges": [
                            {"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": fixed}]}
                        ],
                    }
                ],
            }
        )

    def _query(self, m: re.Match[str], query: dict[str, str], body: Json) -> tuple[int, Json]:
        name = str(body.get("package", {}).get("name", ""))
        vulns = self.vulns.get(name)
        return 200, ({"vulns": vulns} if vulns else {})

    def start(self) -> OsvStandIn:
        """Listen on 127.0.0.1."""
        self.server.start()
        return self

    def stop(self) -> None:
        """Stop listening."""
        self.server.stop()
