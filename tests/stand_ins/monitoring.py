"""A gRPC stand-in of Cloud Monitoring v3 ``MetricService.ListTimeSeries`` on 127.0.0.1.

``google-cloud-monitoring`` has no REST transport and ships no servicers, so the service is
served with ``grpc.method_handlers_generic_handler`` and the proto-plus (de)serialisers.

Stored series hold one point per minute: an ``int`` (DELTA INT64, e.g. request counts) or
a list of samples (DELTA DISTRIBUTION, e.g. latencies in ms, memory utilisation 0..1).
Supported: filters of ``=`` terms joined by ``AND``; ``ALIGN_DELTA`` over the interval,
``ALIGN_MAX`` on INT64 gauges (instance counts);
``REDUCE_SUM`` (with ``group_by_fields``) on INT64, ``REDUCE_PERCENTILE_{50,95,99}`` on
distributions. Anything else answers INVALID_ARGUMENT, so an unexpected query fails loudly.
Unknown projects answer PERMISSION_DENIED. Alert policies, uptime checks and dashboards are
served by :mod:`tests.stand_ins.monitoring_config` on the same port (:attr:`config`).
"""

from __future__ import annotations

import re
import threading
import time
from concurrent import futures
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.api import metric_pb2
from google.cloud import monitoring_v3

from tests.stand_ins.monitoring_config import MonitoringConfigStandIn

_Aligner = monitoring_v3.Aggregation.Aligner
_Reducer = monitoring_v3.Aggregation.Reducer
_PERCENTILES = {
    _Reducer.REDUCE_PERCENTILE_50: 50,
    _Reducer.REDUCE_PERCENTILE_95: 95,
    _Reducer.REDUCE_PERCENTILE_99: 99,
}
_TERM = re.compile(r'^\s*([A-Za-z_.]+)\s*=\s*"([^"]*)"\s*$')


@dataclass
class Series:
    """One stored time series: labels and ``{minute_end_seconds: value}``."""

    metric_type: str
    metric_labels: dict[str, str]
    resource_labels: dict[str, str]
    points: dict[int, int | list[float]] = field(default_factory=dict)

    def field(self, path: str) -> str | None:
        if path == "metric.type":
            return self.metric_type
        if path == "resource.type":
            return "cloud_run_revision"
        if path.startswith("metric.labels."):
            return self.metric_labels.get(path.removeprefix("metric.labels."))
        if path.startswith("resource.labels."):
            return self.resource_labels.get(path.removeprefix("resource.labels."))
        return None


class Abort(Exception):
    """Abort the RPC with a status code."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code


def _percentile(samples: list[float], pct: int) -> float:
    ordered = sorted(samples)
    rank = (len(ordered) - 1) * pct / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


class MonitoringStandIn:
    """The stand-in's state and gRPC server."""

    def __init__(self) -> None:
        self.series: list[Series] = []
        self.projects: set[str] = set()
        self.calls: list[monitoring_v3.ListTimeSeriesRequest] = []
        self._lock = threading.Lock()
        self._server: grpc.Server | None = None
        self.address = ""
        self.config = MonitoringConfigStandIn(self.projects, self._lock)
        """Alert policies, uptime checks and dashboards (see :mod:`.monitoring_config`)."""

    def seed_cloud_run(
        self,
        project: str,
        service: str,
        *,
        requests_per_minute: int = 100,
        error_ratio: float = 0.0,
        p95_ms: float = 120.0,
        memory: float = 0.4,
        minutes: int = 60,
        instances: int = 2,
        cpu: float = 0.3,
        concurrency: float = 20.0,
    ) -> None:
        """An hour of Cloud Run metrics for ``service`` with these figures."""
        self.projects.add(project)
        now = int(time.time()) // 60 * 60
        res = {"project_id": project, "service_name": service, "location": "europe-west1"}
        errors = round(requests_per_minute * error_ratio)
        ok = Series(
            "run.googleapis.com/request_count",
            {"response_code": "200", "response_code_class": "2xx"},
            res,
        )
        bad = Series(
            "run.googleapis.com/request_count",
            {"response_code": "503", "response_code_class": "5xx"},
            res,
        )
        latency = Series("run.googleapis.com/request_latencies", {}, res)
        mem = Series("run.googleapis.com/container/memory/utilizations", {}, res)
        cpu_series = Series("run.googleapis.com/container/cpu/utilizations", {}, res)
        active = Series("run.googleapis.com/container/instance_count", {"state": "active"}, res)
        idle = Series("run.googleapis.com/container/instance_count", {"state": "idle"}, res)
        busy = Series("run.googleapis.com/container/max_request_concurrencies", {}, res)
        slow = max(1, requests_per_minute // 20 + 1)  # just over 5 % of requests at p95_ms
        for i in range(minutes):
            end = now - i * 60
            ok.points[end] = requests_per_minute - errors
            bad.points[end] = errors
            latency.points[end] = [p95_ms * 0.3] * (requests_per_minute - slow) + [p95_ms] * slow
            mem.points[end] = [memory * 0.9, memory, memory]
            cpu_series.points[end] = [cpu * 0.5, cpu, cpu]
            # The peak is reached once, in the middle of the window.
            active.points[end] = instances if i == minutes // 2 else max(1, instances // 2)
            idle.points[end] = 0
            busy.points[end] = [concurrency * 0.5, concurrency, concurrency]
        with self._lock:
            self.series.extend([ok, bad, latency, mem, cpu_series, active, idle, busy])

    # ---- ListTimeSeries -----------------------------------------------------------------

    def _list(
        self, request: monitoring_v3.ListTimeSeriesRequest
    ) -> monitoring_v3.ListTimeSeriesResponse:
        project = request.name.removeprefix("projects/")
        if project not in self.projects:
            raise Abort(
                grpc.StatusCode.PERMISSION_DENIED,
                "Permission monitoring.timeSeries.list denied (or the resource may not exist) "
                f"on projects/{project}",
            )
        terms = [t for t in re.split(r"\s+AND\s+", request.filter) if t.strip()]
        wanted = []
        for term in terms:
            match = _TERM.match(term)
            if not match:
                raise Abort(
                    grpc.StatusCode.INVALID_ARGUMENT, f"stand-in cannot parse filter term {term!r}"
                )
            wanted.append(match.groups())
        start = request.interval.start_time.timestamp() if request.interval.start_time else 0
        end = request.interval.end_time.timestamp()
        agg = request.aggregation
        if agg.per_series_aligner not in (_Aligner.ALIGN_DELTA, _Aligner.ALIGN_MAX):
            raise Abort(
                grpc.StatusCode.INVALID_ARGUMENT, "stand-in supports only ALIGN_DELTA and ALIGN_MAX"
            )
        peak = agg.per_series_aligner == _Aligner.ALIGN_MAX
        matching = [s for s in self.series if all(s.field(path) == value for path, value in wanted)]
        groups: dict[tuple[tuple[str, str], ...], list[Series]] = {}
        for s in matching:
            key = tuple((f, s.field(f) or "") for f in agg.group_by_fields)
            groups.setdefault(key, []).append(s)
        out = []
        for key, members in groups.items():
            per_series = [[v for t, v in s.points.items() if start < t <= end] for s in members]
            if peak:
                if any(v and not isinstance(v[0], int) for v in per_series):
                    raise Abort(grpc.StatusCode.INVALID_ARGUMENT, "ALIGN_MAX needs INT64 series")
                values = [max(v) for v in per_series if v]
            else:
                values = [x for v in per_series for x in v]
            if not values:
                continue
            out.append(
                self._reduce(project, key, members[0], values, agg.cross_series_reducer, start, end)
            )
        return monitoring_v3.ListTimeSeriesResponse(time_series=out)

    def _reduce(
        self,
        project: str,
        key: tuple[tuple[str, str], ...],
        sample: Series,
        values: list[Any],
        reducer: Any,
        start: float,
        end: float,
    ) -> monitoring_v3.TimeSeries:
        if reducer == _Reducer.REDUCE_SUM and all(isinstance(v, int) for v in values):
            value: dict[str, Any] = {"int64_value": sum(values)}
            value_type = metric_pb2.MetricDescriptor.ValueType.INT64
        elif reducer in _PERCENTILES and all(isinstance(v, list) for v in values):
            merged = [x for v in values for x in v]
            value = {"double_value": _percentile(merged, _PERCENTILES[reducer])}
            value_type = metric_pb2.MetricDescriptor.ValueType.DOUBLE
        else:
            raise Abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"stand-in does not support reducer {reducer!r} on {sample.metric_type}",
            )
        labels = {
            path.removeprefix("metric.labels."): v
            for path, v in key
            if path.startswith("metric.labels.")
        }
        return monitoring_v3.TimeSeries(
            metric={"type": sample.metric_type, "labels": labels},
            resource={"type": "cloud_run_revision", "labels": {"project_id": project}},
            metric_kind=metric_pb2.MetricDescriptor.MetricKind.DELTA,
            value_type=value_type,
            points=[
                {
                    "interval": {
                        "start_time": {"seconds": int(start)},
                        "end_time": {"seconds": int(end)},
                    },
                    "value": value,
                }
            ],
        )

    # ---- server -------------------------------------------------------------------------

    def _handle(
        self, request: monitoring_v3.ListTimeSeriesRequest, context: grpc.ServicerContext
    ) -> Any:
        try:
            with self._lock:
                self.calls.append(request)
                return self._list(request)
        except Abort as exc:
            context.abort(exc.code, str(exc))
        except Exception as exc:  # a bug in the stand-in must not look like an API answer
            context.abort(grpc.StatusCode.INTERNAL, f"stand-in bug: {exc!r}")

    def start(self) -> None:
        """Serve on 127.0.0.1 on a free port; :attr:`address` is ``127.0.0.1:PORT``."""
        handler = grpc.unary_unary_rpc_method_handler(
            self._handle,
            request_deserializer=monitoring_v3.ListTimeSeriesRequest.deserialize,
            response_serializer=monitoring_v3.ListTimeSeriesResponse.serialize,
        )
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        server.add_generic_rpc_handlers(
            [
                grpc.method_handlers_generic_handler(
                    "google.monitoring.v3.MetricService", {"ListTimeSeries": handler}
                ),
                *self.config.handlers(),
            ]
        )
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        self._server = server
        self.address = f"127.0.0.1:{port}"

    def stop(self) -> None:
        """Stop serving."""
        if self._server is not None:
            self._server.stop(grace=None)
