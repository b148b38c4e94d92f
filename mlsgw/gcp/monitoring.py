"""Cloud Monitoring v3 adapter (``google-cloud-monitoring``, gRPC only): Cloud Run time series."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from google.api_core import exceptions as api
from google.api_core.retry import Retry, if_exception_type
from google.cloud import monitoring_v3

from mlsgw.gcp.base import CapacityFigures, ServiceMetrics
from mlsgw.gcp.errors import vendor_errors

_Aligner = monitoring_v3.Aggregation.Aligner
_Reducer = monitoring_v3.Aggregation.Reducer
REQUESTS = "run.googleapis.com/request_count"
LATENCIES = "run.googleapis.com/request_latencies"
MEMORY = "run.googleapis.com/container/memory/utilizations"
CPU = "run.googleapis.com/container/cpu/utilizations"
INSTANCES = "run.googleapis.com/container/instance_count"
CONCURRENCY = "run.googleapis.com/container/max_request_concurrencies"


class MonitoringAdapter:
    """:class:`mlsgw.gcp.base.MonitoringApi` over ``MetricServiceClient``."""

    def __init__(self, client: monitoring_v3.MetricServiceClient, *, timeout: float) -> None:
        self._client = client
        self._timeout = timeout
        # ``timeout`` is per attempt; the retry deadline is what bounds a dead endpoint.
        self._retry = Retry(
            predicate=if_exception_type(api.ServiceUnavailable),
            initial=0.1,
            maximum=1.0,
            timeout=timeout,
        )

    def _series(
        self,
        project: str,
        service: str,
        metric: str,
        window: timedelta,
        reducer: Any,
        group_by: list[str] | None = None,
        aligner: Any = _Aligner.ALIGN_DELTA,
    ) -> list[Any]:
        now = int(time.time())
        seconds = int(window.total_seconds())
        request = {
            "name": f"projects/{project}",
            "filter": (
                f'metric.type = "{metric}" AND resource.type = "cloud_run_revision" '
                f'AND resource.labels.service_name = "{service}"'
            ),
            "interval": {"start_time": {"seconds": now - seconds}, "end_time": {"seconds": now}},
            "aggregation": {
                "alignment_period": {"seconds": seconds},
                "per_series_aligner": aligner,
                "cross_series_reducer": reducer,
                "group_by_fields": group_by or [],
            },
            "view": monitoring_v3.ListTimeSeriesRequest.TimeSeriesView.FULL,
        }
        with vendor_errors(f"read {metric} for {service}", "monitoring.timeSeries.list"):
            return list(
                self._client.list_time_series(
                    request=request, timeout=self._timeout, retry=self._retry
                )
            )

    def service_metrics(self, project: str, service: str, window: timedelta) -> ServiceMetrics:
        """Requests, 5xx responses, p95 latency (ms) and p99 memory utilisation."""
        totals: dict[str, int] = {}
        group = "metric.labels.response_code_class"
        for series in self._series(
            project, service, REQUESTS, window, _Reducer.REDUCE_SUM, [group]
        ):
            code_class = series.metric.labels.get("response_code_class", "")
            count = sum(int(p.value.int64_value) for p in series.points)
            totals[code_class] = totals.get(code_class, 0) + count
        p95 = self._peak(project, service, LATENCIES, window, _Reducer.REDUCE_PERCENTILE_95)
        memory = self._peak(project, service, MEMORY, window, _Reducer.REDUCE_PERCENTILE_99)
        return ServiceMetrics(
            requests=sum(totals.values()),
            errors_5xx=totals.get("5xx", 0),
            latency_p95_ms=p95,
            memory_utilization=memory,
        )

    def _peak(
        self, project: str, service: str, metric: str, window: timedelta, reducer: Any
    ) -> float | None:
        values = [
            float(p.value.double_value)
            for series in self._series(project, service, metric, window, reducer)
            for p in series.points
        ]
        return max(values) if values else None

    def capacity(self, project: str, service: str, window: timedelta) -> CapacityFigures:
        """Peak instances (ALIGN_MAX per series, summed), p99 CPU and p99 concurrency."""
        counts = [
            int(p.value.int64_value)
            for series in self._series(
                project,
                service,
                INSTANCES,
                window,
                _Reducer.REDUCE_SUM,
                aligner=_Aligner.ALIGN_MAX,
            )
            for p in series.points
        ]
        return CapacityFigures(
            peak_instances=max(counts) if counts else None,
            cpu_utilization=self._peak(
                project, service, CPU, window, _Reducer.REDUCE_PERCENTILE_99
            ),
            concurrency=self._peak(
                project, service, CONCURRENCY, window, _Reducer.REDUCE_PERCENTILE_99
            ),
        )
