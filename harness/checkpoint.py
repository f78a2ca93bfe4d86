"""Checkpoints: weights, config and vocabulary in one file that loads without unpickling code.

Everything stored is a tensor, str, number, list or dict, so `torch.load(weights_only=True)`
can read it: a checkpoint from someone else cannot run code on the reader's machine.
"""

from __future__ import annotations

import os
import pickle
from dataclasses import dataclass
from pathlib import Path

import torch

from harness.config import TrainConfig
from harness.corpus import Vocab
from harness.errors import HarnessError
from harness.models import CharModel, build_model

FORMAT = "harness-checkpoint-v1"


@dataclass
class Checkpoint:
    model: CharModel
    config: TrainConfig
    vocab: Vocab
    meta: dict


def save_checkpoint(path: Path, model: CharModel, config: TrainConfig, vocab: Vocab, meta: dict) -> None:
    """Write atomically (temp file, then rename) so a crash never leaves a half-written best.pt."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": FORMAT,
        "config": config.to_dict(),
        "vocab": vocab.chars,
        "state_dict": {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()},
        "meta": meta,
    }
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    torch.save(payload, tmp)
    tmp.replace(path)


def load_checkpoint(path: str | Path, device: torch.device | str = "cpu") -> Checkpoint:
    path = Path(path)
    if not path.is_file():
        raise HarnessError(f"checkpoint {str(path)!r} does not exist; give the best.pt written by a training run")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise HarnessError(f"{path}: not a readable harness checkpoint ({first})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise HarnessError(f"{path}: not a harness checkpoint (expected format {FORMAT})")
    config = TrainConfig.from_dict(payload["config"])
    vocab = Vocab(payload["vocab"])
    model = build_model(config.model, len(vocab), config.embedding_dim, config.hidden_dim, config.layers,
                        config.dropout)
    model.load_state_dict(payload["state_dict"])
    model.to(device).eval()
    return Checkpoint(model, config, vocab, payload.get("meta", {}))
