"""Tasks over container images: are the last revisions' images still in Artifact Registry
(a rollback needs them), and the vulnerability findings of the serving image."""

from __future__ import annotations

from collections import Counter

from mlsgw.gcp.artifacts import ImageRef, RegistryApi, parse_image
from mlsgw.report import CheckResult, Perf, Status
from mlsgw.runbook.context import RunContext

LAST_REVISIONS = 5
"""How many of the newest revisions must keep their image (the rollback candidates)."""
SEVERITY_ORDER = ("CRITICAL", "HIGH", "MEDIUM", "LOW", "MINIMAL", "SEVERITY_UNSPECIFIED")
SHOWN = 10


def registry_images(ctx: RunContext) -> CheckResult:
    """For each of the last revisions, whether its image is still stored. A missing image of
    the serving revision is critical (nothing to restart from), of an older one a warning (no
    rollback to it); images outside Artifact Registry are listed as not checked."""
    service = ctx.run.get_service(ctx.target.service_name)
    serving = set(service.serving())
    revisions = ctx.run.list_revisions(ctx.target.service_name)[:LAST_REVISIONS]
    registry: RegistryApi | None = None
    present: list[tuple[str, str]] = []
    missing: list[tuple[str, str]] = []
    unchecked: list[str] = []
    for revision in revisions:
        ref = parse_image(revision.image or "")
        if ref is None:
            unchecked.append(f"{revision.name}: {revision.image or 'no image'}")
            continue
        registry = registry or ctx.cloud.registry()
        digest = registry.digest_of(ref)
        (present if digest else missing).append((revision.name, revision.image or ""))
    status = Status.OK
    if missing:
        status = Status.CRITICAL if any(name in serving for name, _ in missing) else Status.WARNING
    if not present and not missing:
        status = Status.SKIPPED
    parts = [f"{len(present)} of the last {len(revisions)} revisions' images present"]
    if missing:
        parts.append("missing: " + ", ".join(f"{name} ({image})" for name, image in missing))
    if unchecked:
        parts.append(f"{len(unchecked)} not in Artifact Registry (not checked)")
    return CheckResult(
        "registry_images",
        status,
        "; ".join(parts),
        details=tuple(unchecked),
        data={
            "present": [{"revision": n, "image": i} for n, i in present],
            "missing": [{"revision": n, "image": i, "serving": n in serving} for n, i in missing],
            "not_checked": unchecked,
        },
    )


def base_image_vulnerabilities(ctx: RunContext) -> CheckResult:
    """Artifact Analysis findings on the serving image (its OS packages come from the base
    image): critical findings are critical, high ones a warning."""
    service = ctx.run.get_service(ctx.target.service_name)
    ref = parse_image(service.image or "")
    if ref is None:
        return CheckResult(
            "base_image_vulnerabilities",
            Status.SKIPPED,
            f"{service.image or 'no image'} is not in Artifact Registry: Artifact Analysis "
            "scans only images stored there",
        )
    digest = ctx.cloud.registry().digest_of(ref)
    if digest is None:
        return CheckResult(
            "base_image_vulnerabilities",
            Status.CRITICAL,
            f"the serving image {service.image} is no longer in Artifact Registry",
        )
    return _judge(ctx, ref, digest)


def _judge(ctx: RunContext, ref: ImageRef, digest: str) -> CheckResult:
    url = ref.resource_url(digest)
    found = ctx.cloud.analysis().vulnerabilities(ref.project, url)
    counts = Counter(v.severity for v in found)
    worst = sorted(found, key=lambda v: (SEVERITY_ORDER.index(v.severity), v.id))
    if counts["CRITICAL"]:
        status = Status.CRITICAL
    elif counts["HIGH"]:
        status = Status.WARNING
    else:
        status = Status.OK
    tally = ", ".join(f"{counts[s]} {s.lower()}" for s in SEVERITY_ORDER if counts[s])
    fixable = sum(1 for v in found if v.fix_available)
    summary = f"{tally or 'no findings'} on {ref.package}@{digest[:19]}"
    if fixable:
        summary += f"; {fixable} with a fix: rebuild on an updated base image and deploy"
    return CheckResult(
        "base_image_vulnerabilities",
        status,
        summary,
        details=tuple(
            f"{v.severity} {v.id} in {v.package or '?'}"
            + (" (fix available)" if v.fix_available else "")
            for v in worst[:SHOWN]
        ),
        perf=(Perf("critical", counts["CRITICAL"]), Perf("high", counts["HIGH"])),
        data={
            "resource_url": url,
            "counts": {s: counts[s] for s in SEVERITY_ORDER if counts[s]},
            "fix_available": fixable,
        },
    )
