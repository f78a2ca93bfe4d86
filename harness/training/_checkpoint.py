"""Checkpoints: weights, config and vocabulary in one file that loads without unpickling code.

Everything stored is a tensor, str, number, list or dict, so `torch.load(weights_only=True)`
can read it: a checkpoint from someone else cannot run code on the reader's machine.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from harness.common import HarnessError, first_line, write_atomic
from harness.data import Vocab
from harness.models import CharModel
from harness.training._config import TrainConfig

FORMAT = "harness-checkpoint-v1"


@dataclass
class Checkpoint:
    model: CharModel
    config: TrainConfig
    vocab: Vocab
    meta: dict
    optimizer_state: dict | None = None  # where the run kept it (a PBT segment's end: its successor continues it)


def save_checkpoint(path: Path, model: CharModel, config: TrainConfig, vocab: Vocab, meta: dict,
                    optimizer_state: dict | None = None) -> None:
    """Write atomically (temp file, then rename) so a crash never leaves a half-written best.pt."""
    payload = {
        "format": FORMAT,
        "config": config.to_dict(),
        "vocab": vocab.chars,
        "state_dict": {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()},
        "meta": meta,
    }
    if optimizer_state is not None:
        payload["optimizer"] = to_cpu(optimizer_state)
    write_atomic(path, lambda tmp: torch.save(payload, tmp))


def load_checkpoint(path: str | Path, device: torch.device | str = "cpu") -> Checkpoint:
    """Read a checkpoint; anything else (a text file, random bytes, someone's pickle) gets one line, no advice.

    torch's own message for an unreadable file suggests `weights_only=False`, which would run
    whatever code the file holds; that advice is never passed on.
    """
    path = Path(path)
    if path.is_dir():
        raise HarnessError(f"{path} is a directory; give the best.pt file inside a run directory "
                           f"(e.g. {path / 'best.pt'})")
    if not path.is_file():
        raise HarnessError(f"checkpoint {str(path)!r} does not exist; give the best.pt written by a training run")
    not_ours = f"{path} is not a harness checkpoint (give the best.pt written by harness train or a sweep trial)"
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except PermissionError:
        raise HarnessError(f"{path}: cannot read it (permission denied)") from None
    except Exception:  # an untrusted file may fail the unpickler in any way; none of them is a bug of ours
        raise HarnessError(not_ours) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise HarnessError(f"{not_ours}; expected format {FORMAT}")
    try:
        config = TrainConfig.from_dict(payload["config"])
        vocab = Vocab(payload["vocab"])
        model = config.build(len(vocab))
        model.load_state_dict(payload["state_dict"])
    except (KeyError, TypeError, ValueError, RuntimeError, HarnessError) as e:
        raise HarnessError(f"{path}: a damaged harness checkpoint ({first_line(e)}); retrain or use another") from None
    model.to(device).eval()
    return Checkpoint(model, config, vocab, payload.get("meta", {}), payload.get("optimizer"))


def to_cpu(value):
    """A copy of a (nested) state dict with every tensor on the host: what a checkpoint stores, and what a
    warm-up keeps aside without a second copy of the optimizer's state on the device."""
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu", copy=True)
    if isinstance(value, dict):
        return {k: to_cpu(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(to_cpu(v) for v in value)
    return value
