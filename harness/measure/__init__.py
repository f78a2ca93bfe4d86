"""How a run is measured: the device and its clock, NVML telemetry, fair-share device-seconds, cost and text metrics."""

from harness.measure import _textmetrics as textmetrics
from harness.measure._cost import (
    SHARED_THRESHOLD,
    RunCost,
    ceiling_key,
    cost_summary,
    matmul_ceiling,
    matmul_tflops,
    model_flops_utilization,
    seed_ceiling,
)
from harness.measure._device import device_name, fingerprint, resolve_device, synced_clock, synchronize
from harness.measure._nvml import TelemetryWarning, uuid_candidates
from harness.measure._occupancy import Occupancy, ShareClock
from harness.measure._telemetry import Phase, Telemetry, percentile
from harness.measure._textmetrics import Reference, sample_metrics

__all__ = [
    "SHARED_THRESHOLD",
    "Occupancy",
    "Phase",
    "Reference",
    "RunCost",
    "ShareClock",
    "Telemetry",
    "TelemetryWarning",
    "ceiling_key",
    "cost_summary",
    "device_name",
    "fingerprint",
    "matmul_ceiling",
    "matmul_tflops",
    "model_flops_utilization",
    "percentile",
    "resolve_device",
    "sample_metrics",
    "seed_ceiling",
    "synced_clock",
    "synchronize",
    "textmetrics",
    "uuid_candidates",
]
