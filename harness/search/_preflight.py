"""What a worker checks and measures before its first trial, so that a study the device cannot honour stops
with one clear error instead of failing every trial, and every trial's MFU is relative to one measured rate."""

from __future__ import annotations

import optuna
import torch

from harness.common import HarnessError, interrupts
from harness.measure import Telemetry, ceiling_key, matmul_ceiling, seed_ceiling
from harness.models import build_model
from harness.search._options import SweepOptions
from harness.search._optuna import storage_of
from harness.search._spec import StudySpec
from harness.search._storage import trial_slot_lock
from harness.training import resolve_precision

CEILING_ATTR = "harness:matmul_ceiling"  # device|dtype -> how fast its matmul ran, measured before the first trial


def check_energy(telemetry: Telemetry, device: torch.device) -> None:
    """Refuse the energy objective where no trial could be measured (every one would score inf)."""
    if not telemetry.gpu:
        raise HarnessError(f"second_objective energy_j needs NVML's energy counter or power reading, and {device} "
                           f"has neither; use second_objective = \"device_seconds\" on this machine")
    if not telemetry.energy_readable:
        raise HarnessError(f"second_objective energy_j: NVML answers NotSupported for both the energy counter and "
                           f"the power reading of {telemetry.describe_device()}; use second_objective = "
                           f"\"device_seconds\" on this device")


def check_precision(spec: StudySpec, device: torch.device, vocab_size: int) -> set[str]:
    """Refuse a precision the device cannot honour before the first trial, not as a failure of every trial;
    the modes the study's families will train in."""
    return {resolve_precision(spec.precision, build_model(family, vocab_size, 8, 8, 1, 0.0).to(device), device).mode
            for family in spec.families()}


def measure_ceilings(study: optuna.Study, spec: StudySpec, options: SweepOptions, device: torch.device,
                     modes: set[str]) -> None:
    """The matmul rate MFU is relative to, measured once per device and dtype before any trial, alone (other
    workers wait on the trial-slot lock), stored in the study and reused by every trial of it."""
    with trial_slot_lock(storage_of(study), options.results_dir, spec.name):
        stored = dict(study.user_attrs.get(CEILING_ATTR) or {})
        for mode in sorted(modes):
            key = ceiling_key(device, mode)
            if key in stored:
                seed_ceiling(stored[key])
            else:
                stored[key] = matmul_ceiling(device, mode)
        if stored != study.user_attrs.get(CEILING_ATTR):
            with interrupts.deferred():
                study.set_user_attr(CEILING_ATTR, stored)
