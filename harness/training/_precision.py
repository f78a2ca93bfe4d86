"""Numeric precision that is what it says: decided by probing what the model's layers really compute in.

PyTorch's autocast wrapper for cuDNN recurrent layers (`aten/src/ATen/cudnn/AutocastRNN.cpp`) has
cast to float16 whatever dtype autocast was given, in the releases before cuDNN bf16 RNNs were
wired in; with such a torch, "bf16" trains an LSTM in fp16 without loss scaling, and the small
gradients of long sequences underflow. So no mode is trusted by its name or by a version table:
at start-up a copy of the model runs one forward pass under the candidate autocast, forward hooks
read the dtype each part (embedding, recurrent core, output layer) really returns, and `decide`
turns that into the mode used, or a refusal that says why.

Modes:
- `fp32`: no autocast; TF32 matmuls off, so fp32 means fp32.
- `bf16`: autocast to bfloat16; refused unless the core and the head really return bfloat16.
- `fp16`: autocast to float16 with a gradient scaler, always.
- `auto`: bf16 where the probe confirms it, else fp16 with a scaler where the probe confirms
  that, else fp32. On a CPU, fp32.
The embedding is a table lookup, exact in any dtype; it is recorded as what it returns.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator
from dataclasses import asdict, dataclass

import torch

from harness.common import HarnessError, first_line
from harness.models import CharModel

MODES = ("auto", "fp32", "bf16", "fp16")
AMP_ALIASES = {"auto": "auto", "bf16": "bf16", "off": "fp32"}  # the old --amp values
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
NAMES = {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16", torch.float64: "fp64"}


@dataclass
class Precision:
    """The precision a run really used, part by part, and why it was chosen."""

    requested: str
    mode: str  # fp32 | bf16 | fp16
    embedding: str | None
    recurrent: str | None  # None: the family has no recurrent core (mlp)
    head: str | None
    tf32: bool
    grad_scaler: bool
    reason: str

    def autocast(self, device: torch.device):
        if self.mode == "fp32" or device.type != "cuda":
            return contextlib.nullcontext()
        return torch.autocast("cuda", dtype=DTYPES[self.mode])

    @contextlib.contextmanager
    def scoped(self, device: torch.device) -> Iterator[None]:
        """The process-wide settings this precision needs, for the run only: fp32 on CUDA turns TF32 off
        (so fp32 means fp32) and puts the caller's setting back after, so the next run or benchmark
        section starts from what the process had."""
        if device.type != "cuda" or self.mode != "fp32":
            yield
            return
        saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
        try:
            yield
        finally:
            torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved

    def scaler(self, device: torch.device) -> torch.amp.GradScaler:
        """fp16's loss scaling; disabled (every call a pass-through) in every other mode, so the training
        step has one path (nanoGPT's habit)."""
        return torch.amp.GradScaler(device.type, enabled=self.grad_scaler)

    def describe(self) -> str:
        parts = ", ".join(f"{name} {value}" for name, value in
                          (("embedding", self.embedding), ("core", self.recurrent), ("head", self.head)) if value)
        scaler = ", gradient scaler" if self.grad_scaler else ""
        return f"{self.mode} ({parts}; TF32 {'on' if self.tf32 else 'off'}{scaler})"

    def to_dict(self) -> dict:
        return {**asdict(self), "summary": self.describe()}


def normalize_precision(requested: str) -> str:
    if requested in MODES:
        return requested
    if requested in AMP_ALIASES:
        return AMP_ALIASES[requested]
    raise HarnessError(f"precision {requested!r} is not one of {', '.join(MODES)}")


def decide(requested: str, device_type: str, bf16_supported: bool, probes: dict[str, dict[str, str | None]],
           torch_version: str = torch.__version__) -> tuple[str, str]:
    """(mode, reason) from what the device supports and what each candidate's probe returned.

    `probes` maps a candidate mode ("bf16", "fp16") to the dtypes its probe saw for "core" and
    "head" (a core of None: the family has none). Pure, so every case is tested without a GPU.
    """
    requested = normalize_precision(requested)
    if device_type != "cuda":
        if requested in ("bf16", "fp16"):
            raise HarnessError(f"precision {requested} needs a CUDA GPU; on the CPU the harness trains in fp32 "
                               f"(use --precision fp32 or auto)")
        return "fp32", "CPU: fp32"

    def real(mode: str) -> bool:
        seen = probes.get(mode) or {}
        return seen.get("head") == mode and seen.get("core") in (mode, None)

    if requested == "fp32":
        return "fp32", "asked for fp32"
    if requested == "bf16":
        if not bf16_supported:
            raise HarnessError("precision bf16: this GPU has no bfloat16 support; use --precision fp16 (with a "
                               "gradient scaler) or fp32")
        if not real("bf16"):
            seen = probes.get("bf16") or {}
            raise HarnessError(f"precision bf16: under bf16 autocast this torch ({torch_version}) runs the recurrent "
                               f"core in {seen.get('core')} and the output layer in {seen.get('head')}, not bf16; "
                               f"use --precision fp16 (with a gradient scaler) or fp32")
        return "bf16", "asked for bf16; probe confirmed bf16"
    if requested == "fp16":
        if not real("fp16"):
            seen = probes.get("fp16") or {}
            raise HarnessError(f"precision fp16: under fp16 autocast this torch ({torch_version}) runs the core in "
                               f"{seen.get('core')} and the head in {seen.get('head')}; use --precision fp32")
        return "fp16", "asked for fp16; probe confirmed fp16, with a gradient scaler"
    if bf16_supported and real("bf16"):
        return "bf16", "auto: the probe confirmed bf16 in every part"
    if real("fp16"):
        seen = probes.get("bf16") or {}
        why = (f"bf16 autocast gave a {seen.get('core')} core" if bf16_supported and seen
               else "no bf16 on this GPU")
        return "fp16", f"auto: {why}; fp16 with a gradient scaler instead"
    return "fp32", "auto: neither bf16 nor fp16 autocast reached every part"


def probe(model: CharModel, device: torch.device, mode: str) -> dict[str, str | None]:
    """The dtype each part of a copy of `model` returns in one forward pass under `mode`'s autocast."""
    trial = copy.deepcopy(model).to(device)
    seen: dict[str, str | None] = {"embedding": None, "core": None, "head": None}
    hooks = []
    for name, module in trial.parts().items():
        if module is None:
            continue

        def hook(_module, _inputs, output, name=name):
            out = output[0] if isinstance(output, tuple) else output
            seen[name] = NAMES.get(out.dtype, str(out.dtype))

        hooks.append(module.register_forward_hook(hook))
    tokens = torch.zeros((2, 4), dtype=torch.long, device=device)
    autocast = torch.autocast(device.type, dtype=DTYPES[mode]) if mode != "fp32" else contextlib.nullcontext()
    try:
        with torch.no_grad(), autocast:
            trial(tokens, None)
    except torch.cuda.OutOfMemoryError:
        raise  # a model that does not fit is pruned as OOM by the caller, not refused a precision
    except RuntimeError as e:  # a dtype this device/torch cannot run at all
        seen["error"] = first_line(e)
    finally:
        for h in hooks:
            h.remove()
    return seen


def resolve_precision(requested: str, model: CharModel, device: torch.device) -> Precision:
    """Probe, decide, and set TF32 to match: the precision this run will use, or a HarnessError."""
    requested = normalize_precision(requested)
    probes: dict[str, dict[str, str | None]] = {}
    bf16 = False
    if device.type == "cuda":
        with torch.cuda.device(device):  # the trial's device, not whichever is current
            bf16 = torch.cuda.is_bf16_supported()
    if device.type == "cuda":
        for mode in ("bf16", "fp16"):
            if requested in (mode, "auto") and (mode != "bf16" or bf16):
                probes[mode] = probe(model, device, mode)
    mode, reason = decide(requested, device.type, bf16, probes)
    # what the run will have: fp32 turns TF32 off for its own duration (Precision.scoped), other modes leave it
    tf32 = device.type == "cuda" and mode != "fp32" and bool(torch.backends.cuda.matmul.allow_tf32
                                                              or torch.backends.cudnn.allow_tf32)
    seen = probes.get(mode) if mode != "fp32" else probe(model, device, "fp32")
    return Precision(requested=requested, mode=mode, embedding=seen.get("embedding"), recurrent=seen.get("core"),
                     head=seen.get("head"), tf32=tf32, grad_scaler=mode == "fp16", reason=reason)
