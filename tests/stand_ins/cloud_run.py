"""A stateful stand-in of Cloud Run Admin v2 over REST, plus the deployed services' front door.

Serves what ``google.cloud.run_v2`` (``transport="rest"``) calls: services create (POST with
``serviceId`` and ``validateOnly``; 409 when it exists), get/update (PATCH
with ``validateOnly``, etag check -> 409 ABORTED), revisions list/get, operations get (LROs
that finish after :attr:`CloudRunStandIn.polls_until_done` polls), get/setIamPolicy with
etags. A template change creates a revision; its fate follows :attr:`image_behaviour`
(``"not-ready"``: never becomes Ready, the operation fails; ``"unhealthy"``: Ready but its
``/health`` answers 503). A revision whose startup probe is an HTTP GET of ``/health`` and
whose ``MLSGW_INFORMATION__MAINTENANCE`` is on never becomes Ready either: the relay answers
503 there from the start, which fails the probe.

The front door stands in for the ``*.run.app`` URLs: ``GET /apps/<service>/health`` answers
as the revision with the largest traffic share would (503 ``maintenance`` when its
``MLSGW_INFORMATION__MAINTENANCE`` is on, as the relay answers);
``/apps/<service>/tags/<tag>/health`` as the tagged revision.

Wire details mirrored: enums as ints, int64 as strings, camelCase, base64 IAM etags.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import itertools
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.stand_ins.rest import ApiError, Json, RestServer, permission_denied

LATEST, REVISION = 1, 2
SUCCEEDED, FAILED = 4, 3
INGRESS_ALL, INGRESS_INTERNAL = 1, 2
_ENUM_NAMES = {
    "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST": LATEST,
    "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION": REVISION,
    "INGRESS_TRAFFIC_ALL": INGRESS_ALL,
    "INGRESS_TRAFFIC_INTERNAL_ONLY": INGRESS_INTERNAL,
    "INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER": 3,
    "INGRESS_TRAFFIC_NONE": 4,
}
_LOC = r"/v2/projects/(?P<project>[^/]+)/locations/(?P<region>[^/]+)"
_SVC = _LOC + r"/services/(?P<service>[^/:]+)"


NOT_READY_MESSAGE = (
    "The user-provided container failed to start and listen on the port defined by PORT=8080."
)
PROBE_FAILED_MESSAGE = "The user-provided container failed the configured startup probe checks."


def _not_ready(revision: str, message: str = "") -> str:
    return f"Revision '{revision}' is not ready and cannot serve traffic. {message}".strip()


def _ts(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _normal(value: Any) -> Any:
    """Drop empty and zero values recursively (proto3 JSON omits them)."""
    if isinstance(value, dict):
        out = {k: _normal(v) for k, v in value.items() if k != "revision"}
        return {k: v for k, v in out.items() if v not in (None, "", 0, [], {}, False)}
    if isinstance(value, list):
        return [_normal(v) for v in value]
    return value


def _env(revision: RevisionRecord) -> dict[str, str]:
    """The revision's plain environment variables (as the relay would read them)."""
    containers = revision.template.get("containers") or [{}]
    return {e["name"]: e.get("value", "") for e in containers[0].get("env", [])}


def _in_maintenance(env: dict[str, str]) -> bool:
    return env.get("MLSGW_INFORMATION__MAINTENANCE", "").lower() in ("1", "true")


def _startup_probe_fails(template: Json) -> bool:
    """An HTTP startup probe of ``/health`` on a relay in maintenance mode (503 from the start)."""
    container = (template.get("containers") or [{}])[0]
    probe = container.get("startupProbe") or {}
    env = {e["name"]: e.get("value", "") for e in container.get("env", [])}
    return (probe.get("httpGet") or {}).get("path") == "/health" and _in_maintenance(env)


def _enum(value: Any) -> int:
    if not isinstance(value, str):
        return int(value or 0)
    if value not in _ENUM_NAMES:
        raise ApiError(400, f"Invalid value for enum field: {value!r}.")
    return _ENUM_NAMES[value]


@dataclass
class RevisionRecord:
    """One revision of a service."""

    name: str
    created: datetime
    template: Json
    ready: bool = True
    healthy: bool = True
    message: str = ""


@dataclass
class ServiceRecord:
    """A service and everything the API reports about it."""

    project: str
    region: str
    id: str
    template: Json
    traffic: list[Json]
    revisions: list[RevisionRecord] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)
    generation: int = 1
    etag: str = ""
    latest_ready: str | None = None
    latest_created: str | None = None
    condition_override: Json | None = None
    iam: Json = field(default_factory=dict)
    ingress: int = INGRESS_ALL
    invoker_iam_disabled: bool = False
    """``IngressTraffic``: 1 all, 2 internal only, 3 internal + load balancer, 4 none."""
    ingress_history: list[int] = field(default_factory=list)
    """Every ingress value written, in order."""

    @property
    def name(self) -> str:
        return f"projects/{self.project}/locations/{self.region}/services/{self.id}"

    def revision(self, short: str) -> RevisionRecord | None:
        return next((r for r in self.revisions if r.name == short), None)

    def serving(self) -> dict[str, int]:
        """Revision -> percent, LATEST resolved."""
        split: dict[str, int] = {}
        for t in self.traffic:
            rev = self.latest_ready if _enum(t.get("type")) == LATEST else t.get("revision")
            if rev and t.get("percent"):
                split[rev] = split.get(rev, 0) + int(t["percent"])
        return split


class CloudRunStandIn:
    """State and routes of the Cloud Run Admin v2 stand-in."""

    def __init__(self, server: RestServer) -> None:
        self.server = server
        self.services: dict[str, ServiceRecord] = {}
        self.projects: set[str] = set()
        """Projects that exist without a service yet (see :meth:`add_project`)."""
        self.operations: dict[str, Json] = {}
        self.image_behaviour: dict[str, str] = {}
        self.public_urls: dict[str, str] = {}
        """``service`` or ``service/tag`` -> the URL reported instead of the front door's
        (a real relay the test started, reachable over HTTP and WebSocket)."""
        self.polls_until_done = 1
        self._concurrent: list[Callable[[ServiceRecord], None]] = []
        self._counter = itertools.count(1)
        self._clock = datetime.now(UTC) - timedelta(days=2)
        s = server.route
        s("GET", _SVC, self._get_service)
        s("POST", _LOC + r"/services", self._create_service)
        s("PATCH", _SVC, self._update_service)
        s("GET", _SVC + "/revisions", self._list_revisions)
        s("GET", _SVC + r"/revisions/(?P<revision>[^/]+)", self._get_revision)
        s("GET", _LOC + r"/operations/(?P<op>[^/:]+)", self._get_operation)
        s("GET", _SVC + ":getIamPolicy", self._get_iam)
        s("POST", _SVC + ":setIamPolicy", self._set_iam)
        s("GET", r"/apps/(?P<service>[^/]+)/health", self._app_health)
        s("GET", r"/apps/(?P<service>[^/]+)/tags/(?P<tag>[^/]+)/health", self._app_health)

    # ---- test hooks ---------------------------------------------------------------------

    def add_service(
        self,
        project: str,
        region: str,
        service: str,
        images: list[str],
        traffic: dict[str, int] | None = None,
        labels: dict[str, str] | None = None,
    ) -> ServiceRecord:
        """A service with one revision per image (oldest first); traffic to LATEST unless
        ``traffic`` maps revision *index* names (``"1"``, ``"2"``) or full names to percents."""
        record = ServiceRecord(project, region, service, {}, [], labels=dict(labels or {}))
        record.iam = {"version": 1, "etag": self._new_iam_etag(), "bindings": []}
        for image in images:
            record.template = {
                "containers": [
                    {"image": image, "resources": {"limits": {"cpu": "1", "memory": "512Mi"}}}
                ],
                "scaling": {"minInstanceCount": 1, "maxInstanceCount": 10},
                "maxInstanceRequestConcurrency": 80,
            }
            self._new_revision(record)
        if traffic is None:
            record.traffic = [{"type": LATEST, "percent": 100}]
        else:
            record.traffic = [
                {"type": REVISION, "revision": self._resolve(record, key), "percent": pct}
                for key, pct in traffic.items()
            ]
        record.etag = self._new_etag(record)
        with self.server.lock:
            self.services[record.name] = record
        return record

    def add_project(self, project: str) -> None:
        """A project the caller may use that has no service yet (a first deployment)."""
        self.projects.add(project)

    def service(self, service: str) -> ServiceRecord:
        """The record of the service with this id."""
        return next(s for s in self.services.values() if s.id == service)

    def concurrent_change(self, change: Callable[[ServiceRecord], None]) -> None:
        """Apply ``change`` as another operator would, just before the next write arrives."""
        self._concurrent.append(change)

    def set_condition(self, service: str, state: int, message: str) -> None:
        """Force the service's terminal (Ready) condition."""
        record = self.service(service)
        record.condition_override = {"type": "Ready", "state": state, "message": message}

    # ---- model --------------------------------------------------------------------------

    def _resolve(self, record: ServiceRecord, key: str) -> str:
        if key.isdigit():
            return record.revisions[int(key) - 1].name
        return key

    def _new_etag(self, record: ServiceRecord) -> str:
        digest = hashlib.sha256(f"{record.name}/{record.generation}/{next(self._counter)}".encode())
        return f'"{digest.hexdigest()[:16]}"'

    def _new_iam_etag(self) -> str:
        return base64.b64encode(
            hashlib.sha256(str(next(self._counter)).encode()).digest()[:8]
        ).decode()

    def _new_revision(self, record: ServiceRecord, explicit: str | None = None) -> RevisionRecord:
        number = len(record.revisions) + 1
        suffix = hashlib.sha256(f"{record.id}{number}".encode()).hexdigest()[:3]
        name = explicit or f"{record.id}-{number:05d}-{suffix}"
        if not name.startswith(record.id + "-") or record.revision(name):
            raise ApiError(
                400, f"Revision name '{name}' must start with '{record.id}-' and be new."
            )
        self._clock += timedelta(minutes=10)
        image = record.template["containers"][0].get("image", "")
        behaviour = self.image_behaviour.get(image, "ok")
        message = NOT_READY_MESSAGE if behaviour == "not-ready" else ""
        if not message and _startup_probe_fails(record.template):
            message = PROBE_FAILED_MESSAGE
        revision = RevisionRecord(
            name=name,
            created=self._clock,
            template=copy.deepcopy(record.template),
            ready=not message,
            healthy=behaviour == "ok",
            message=message,
        )
        record.revisions.append(revision)
        record.latest_created = revision.name
        if revision.ready:
            record.latest_ready = revision.name
        return revision

    def _condition(self, record: ServiceRecord) -> Json:
        if record.condition_override:
            return record.condition_override
        latest = record.revision(record.latest_created or "")
        bad = [r for r in record.serving() if not (record.revision(r) and record.revision(r).ready)]  # type: ignore[union-attr]
        if latest and not latest.ready:
            return {
                "type": "Ready",
                "state": FAILED,
                "message": _not_ready(latest.name, latest.message),
            }
        if bad:
            return {
                "type": "Ready",
                "state": FAILED,
                "message": f"Revision '{bad[0]}' is not ready.",
            }
        return {"type": "Ready", "state": SUCCEEDED, "lastTransitionTime": _ts(self._clock)}

    def _base(self) -> str:
        return self.server.url

    def _service_json(self, record: ServiceRecord) -> Json:
        prefix = f"{record.name}/revisions/"
        statuses = []
        for t in record.traffic:
            status: Json = {"type": _enum(t.get("type")), "percent": int(t.get("percent", 0))}
            if t.get("revision"):
                status["revision"] = t["revision"]
            if t.get("tag"):
                status["tag"] = t["tag"]
                status["uri"] = self.public_urls.get(
                    f"{record.id}/{t['tag']}", f"{self._base()}/apps/{record.id}/tags/{t['tag']}"
                )
            statuses.append(status)
        return {
            "name": record.name,
            "uid": hashlib.md5(record.name.encode()).hexdigest(),
            "generation": str(record.generation),
            "observedGeneration": str(record.generation),
            "labels": record.labels,
            "createTime": _ts(record.revisions[0].created)
            if record.revisions
            else _ts(self._clock),
            "template": copy.deepcopy(record.template),
            "traffic": copy.deepcopy(record.traffic),
            "terminalCondition": self._condition(record),
            "latestReadyRevision": prefix + record.latest_ready if record.latest_ready else "",
            "latestCreatedRevision": prefix + record.latest_created
            if record.latest_created
            else "",
            "trafficStatuses": statuses,
            "uri": self.public_urls.get(record.id, f"{self._base()}/apps/{record.id}"),
            "etag": record.etag,
            "ingress": record.ingress,
            "invokerIamDisabled": record.invoker_iam_disabled,
        }

    def _revision_json(self, record: ServiceRecord, rev: RevisionRecord) -> Json:
        condition: Json = {"type": "Ready", "state": SUCCEEDED if rev.ready else FAILED}
        if rev.message:
            condition["message"] = rev.message
        return {
            "name": f"{record.name}/revisions/{rev.name}",
            "generation": "1",
            "service": record.id,
            "createTime": _ts(rev.created),
            "containers": copy.deepcopy(rev.template.get("containers", [])),
            "scaling": copy.deepcopy(rev.template.get("scaling", {})),
            "conditions": [condition],
        }

    def _lookup(self, m: re.Match[str], permission: str = "run.services.get") -> ServiceRecord:
        name = f"projects/{m['project']}/locations/{m['region']}/services/{m['service']}"
        if name in self.services:
            return self.services[name]
        known = m["project"] in self.projects
        if not known and not any(s.project == m["project"] for s in self.services.values()):
            raise permission_denied(permission, f"projects/{m['project']}")
        raise ApiError(
            404,
            f"Resource '{m['service']}' of kind 'SERVICE' in region '{m['region']}' "
            f"in project '{m['project']}' does not exist.",
        )

    def _operation(self, record: ServiceRecord, result: Json, error: Json | None) -> Json:
        location = f"projects/{record.project}/locations/{record.region}"
        op_name = f"{location}/operations/op-{next(self._counter)}"
        op: Json = {
            "name": op_name,
            "done": False,
            "metadata": {"@type": "type.googleapis.com/google.cloud.run.v2.Service", **result},
            "_polls": 0,
            "_final": {"error": error}
            if error
            else {
                "response": {"@type": "type.googleapis.com/google.cloud.run.v2.Service", **result}
            },
        }
        if self.polls_until_done <= 0:
            op["done"] = True
            op.update(op["_final"])
        self.operations[op_name] = op
        return self._public(op)

    @staticmethod
    def _public(op: Json) -> Json:
        return {k: v for k, v in op.items() if not k.startswith("_")}

    # ---- routes ------------------------------------------------------------------------

    def _get_service(self, m: re.Match[str], query: dict[str, str], body: Json) -> tuple[int, Json]:
        return 200, self._service_json(self._lookup(m))

    def _create_service(
        self, m: re.Match[str], query: dict[str, str], body: Json
    ) -> tuple[int, Json]:
        service_id = query.get("serviceId", "")
        if not re.fullmatch(r"[a-z]([-a-z0-9]{0,47}[a-z0-9])?", service_id):
            raise ApiError(400, f"Invalid service id '{service_id}'.")
        name = f"projects/{m['project']}/locations/{m['region']}/services/{service_id}"
        known = m["project"] in self.projects
        if not known and not any(s.project == m["project"] for s in self.services.values()):
            raise permission_denied("run.services.create", f"projects/{m['project']}")
        if name in self.services:
            raise ApiError(409, f"Resource '{service_id}' already exists.")
        template = copy.deepcopy(body.get("template") or {})
        if not (template.get("containers") or [{}])[0].get("image"):
            raise ApiError(400, "template.containers[0].image: an image is required.")
        traffic = [
            dict(t) | {"type": _enum(t.get("type"))}
            for t in (body.get("traffic") or [{"type": LATEST, "percent": 100}])
        ]
        record = ServiceRecord(
            m["project"],
            m["region"],
            service_id,
            template,
            traffic,
            labels=body.get("labels") or {},
        )
        record.iam = {"version": 1, "etag": self._new_iam_etag(), "bindings": []}
        record.ingress = _enum(body.get("ingress")) or INGRESS_ALL
        record.invoker_iam_disabled = bool(body.get("invokerIamDisabled", False))
        self._validate_traffic(record, traffic, True, None)
        validate_only = query.get("validateOnly") == "true"
        saved = self._clock
        created = self._new_revision(record)
        record.etag = self._new_etag(record)
        if validate_only:
            self._clock = saved
            response = {
                "@type": "type.googleapis.com/google.cloud.run.v2.Service",
                **self._service_json(record),
            }
            return 200, {"name": f"{name}/validate", "done": True, "response": response}
        with self.server.lock:
            self.services[name] = record
        error = None
        if not created.ready:
            error = {"code": 9, "message": _not_ready(created.name, created.message)}
        return 200, self._operation(record, self._service_json(record), error)

    def _update_service(
        self, m: re.Match[str], query: dict[str, str], body: Json
    ) -> tuple[int, Json]:
        record = self._lookup(m, "run.services.update")
        while self._concurrent:
            self._concurrent.pop(0)(record)
            record.generation += 1
            record.etag = self._new_etag(record)
        if body.get("etag") and body["etag"] != record.etag:
            raise ApiError(
                409,
                f"etag mismatch: {record.name} was modified concurrently; read it again",
            )
        template = body.get("template") or {}
        traffic = [
            {k: v for k, v in t.items()} | {"type": _enum(t.get("type"))}
            for t in (body.get("traffic") or [{"type": LATEST, "percent": 100}])
        ]
        explicit = template.get("revision") or None
        changed = explicit is not None or _normal(template) != _normal(record.template)
        self._validate_traffic(record, traffic, changed, explicit)
        validate_only = query.get("validateOnly") == "true"
        target = copy.deepcopy(record) if validate_only else record
        target.labels = dict(body.get("labels") or {})
        ingress = _enum(body.get("ingress")) or INGRESS_ALL
        if not validate_only and ingress != target.ingress:
            target.ingress_history.append(ingress)
        target.ingress = ingress
        target.traffic = traffic
        target.invoker_iam_disabled = bool(body.get("invokerIamDisabled", False))
        error = None
        if changed:
            target.template = copy.deepcopy(template)
            target.template.pop("revision", None)
            if validate_only:
                saved = self._clock
                created = self._new_revision(target, explicit)
                self._clock = saved
            else:
                created = self._new_revision(target, explicit)
            if not created.ready:
                error = {
                    "code": 9,
                    "message": _not_ready(created.name, created.message),
                }
        for rev in target.serving():
            found = target.revision(rev)
            if error is None and found is not None and not found.ready:
                error = {"code": 9, "message": _not_ready(rev)}
        target.generation += 1
        target.etag = self._new_etag(target)
        if validate_only:
            done = {
                "name": f"{record.name}/validate",
                "done": True,
                "response": {
                    "@type": "type.googleapis.com/google.cloud.run.v2.Service",
                    **self._service_json(target),
                },
            }
            return 200, done
        return 200, self._operation(record, self._service_json(record), error)

    def _validate_traffic(
        self, record: ServiceRecord, traffic: list[Json], new_revision: bool, new_name: str | None
    ) -> None:
        total = sum(int(t.get("percent", 0)) for t in traffic)
        if total != 100:
            raise ApiError(400, f"Traffic percentages must add up to 100, got {total}.")
        tags = [t["tag"] for t in traffic if t.get("tag")]
        if len(tags) != len(set(tags)):
            raise ApiError(400, "Traffic tags must be unique.")
        for t in traffic:
            named = t.get("revision", "")
            if t["type"] == REVISION and not record.revision(named) and named != new_name:
                raise ApiError(400, f"Revision named '{t.get('revision')}' does not exist.")
            if t["type"] == LATEST and not (record.latest_ready or new_revision):
                raise ApiError(400, "There is no ready revision to send LATEST traffic to.")

    def _list_revisions(
        self, m: re.Match[str], query: dict[str, str], body: Json
    ) -> tuple[int, Json]:
        record = self._lookup(m, "run.revisions.list")
        revisions = [self._revision_json(record, r) for r in reversed(record.revisions)]
        size = int(query.get("pageSize") or 2)
        start = int(query.get("pageToken") or 0)
        page: Json = {"revisions": revisions[start : start + size]}
        if start + size < len(revisions):
            page["nextPageToken"] = str(start + size)
        return 200, page

    def _get_revision(
        self, m: re.Match[str], query: dict[str, str], body: Json
    ) -> tuple[int, Json]:
        record = self._lookup(m, "run.revisions.get")
        rev = record.revision(m["revision"])
        if rev is None:
            raise ApiError(404, f"Revision '{m['revision']}' does not exist.")
        return 200, self._revision_json(record, rev)

    def _get_operation(
        self, m: re.Match[str], query: dict[str, str], body: Json
    ) -> tuple[int, Json]:
        name = f"projects/{m['project']}/locations/{m['region']}/operations/{m['op']}"
        op = self.operations.get(name)
        if op is None:
            raise ApiError(404, f"Operation {name} does not exist.")
        op["_polls"] += 1
        if not op["done"] and op["_polls"] >= self.polls_until_done:
            op["done"] = True
            op.update(op["_final"])
        return 200, self._public(op)

    def _get_iam(self, m: re.Match[str], query: dict[str, str], body: Json) -> tuple[int, Json]:
        return 200, copy.deepcopy(self._lookup(m, "run.services.getIamPolicy").iam)

    def _set_iam(self, m: re.Match[str], query: dict[str, str], body: Json) -> tuple[int, Json]:
        record = self._lookup(m, "run.services.setIamPolicy")
        while self._concurrent:
            self._concurrent.pop(0)(record)
            record.iam["etag"] = self._new_iam_etag()
        policy = body.get("policy") or {}
        if policy.get("etag") and policy["etag"] != record.iam["etag"]:
            raise ApiError(
                409,
                "There were concurrent policy changes. "
                "Please retry the whole read-modify-write with exponential backoff.",
            )
        record.iam = {
            "version": policy.get("version", 1),
            "etag": self._new_iam_etag(),
            "bindings": policy.get("bindings", []),
        }
        return 200, copy.deepcopy(record.iam)

    def _app_health(self, m: re.Match[str], query: dict[str, str], body: Json) -> tuple[int, Json]:
        record = self.service(m["service"])
        if record.ingress != INGRESS_ALL:
            return 404, {"error": "Page not found: the service's ingress is not public"}
        if m.groupdict().get("tag"):
            target = next(t for t in record.traffic if t.get("tag") == m["tag"])
            name = (
                record.latest_ready if _enum(target.get("type")) == LATEST else target["revision"]
            )
        else:
            split = record.serving()
            name = max(split, key=lambda r: split[r]) if split else None
        rev = record.revision(name or "")
        if rev is None or not rev.ready or not rev.healthy:
            return 503, {"status": "unhealthy", "store": "error", "revision": name}
        if _in_maintenance(_env(rev)):
            return 503, {"status": "maintenance", "version": rev.name, "store": "ok"}
        return 200, {
            "status": "healthy",
            "version": rev.name,
            "uptime_seconds": 60,
            "store": "ok",
            "bus": "disabled",
        }
