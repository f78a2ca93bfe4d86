"""How a run is measured: the device and its clock, NVML telemetry, fair-share device-seconds, cost and text metrics."""

from harness.measure import _textmetrics as textmetrics
from harness.measure._cost import (
    SHARED_THRESHOLD,
    ceiling_key,
    cost_summary,
    matmul_ceiling,
    matmul_tflops,
    seed_ceiling,
)
from harness.measure._device import device_name, fingerprint, resolve_device, synced_clock, synchronize
from harness.measure._nvml import ENERGY_SCOPE, TelemetryWarning, load_nvml, nvml_handle, uuid_candidates
from harness.measure._occupancy import OCCUPANCY_ENV, Occupancy, ShareClock, device_key
from harness.measure._telemetry import Phase, Telemetry, percentile
from harness.measure._textmetrics import Reference, sample_metrics

__all__ = [
    "ENERGY_SCOPE",
    "OCCUPANCY_ENV",
    "SHARED_THRESHOLD",
    "Occupancy",
    "Phase",
    "Reference",
    "ShareClock",
    "Telemetry",
    "TelemetryWarning",
    "ceiling_key",
    "cost_summary",
    "matmul_ceiling",
    "seed_ceiling",
    "device_key",
    "device_name",
    "fingerprint",
    "load_nvml",
    "matmul_tflops",
    "nvml_handle",
    "percentile",
    "resolve_device",
    "sample_metrics",
    "synced_clock",
    "synchronize",
    "textmetrics",
    "uuid_candidates",
]
