"""What the character embeddings learned: a 2-D projection (PCA) and nearest neighbours by cosine.

Each row of W_embed is a character's vector. PCA of the centred rows, by SVD, gives the two
directions of most variance and the share of the variance they hold (a low share means the 2-D
picture hides most of the structure: read the neighbours then). Signs are fixed (the largest
loading of each axis is positive) so the same checkpoint always gives the same picture.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from harness.models import CharModel

SPECIAL = {" ": "␣", "\n": "⏎", "\t": "⇥", "\r": "␍", "\0": "<unk>"}


def char_label(char: str) -> str:
    """A readable label for a vocabulary symbol (space, newline and the unknown symbol are invisible)."""
    if char in SPECIAL:
        return SPECIAL[char]
    if not char.isprintable():
        return f"U+{ord(char):04X}"
    return char


def embedding_matrix(model: CharModel) -> torch.Tensor:
    layer = model.parts()["embedding"]
    if layer is None:
        raise ValueError("this model has no embedding table")
    return layer.weight.detach().float().cpu()


@dataclass
class Projection:
    chars: list[str]
    xy: torch.Tensor  # (vocab, 2)
    explained: tuple[float, float]  # share of the variance on each axis


def project(vectors: torch.Tensor, chars: list[str]) -> Projection:
    centred = vectors - vectors.mean(dim=0, keepdim=True)
    _, s, vh = torch.linalg.svd(centred.double(), full_matrices=False)
    axes = vh[:2]
    for i in range(axes.shape[0]):  # a deterministic sign: the largest loading positive
        if axes[i, axes[i].abs().argmax()] < 0:
            axes[i] = -axes[i]
    xy = (centred.double() @ axes.T).float()
    if xy.shape[1] < 2:
        xy = torch.cat([xy, torch.zeros(len(xy), 2 - xy.shape[1])], dim=1)
    variance = s**2
    share = (variance / variance.sum()).tolist() if variance.sum() > 0 else [0.0, 0.0]
    share += [0.0] * (2 - len(share))
    return Projection(list(chars), xy, (float(share[0]), float(share[1])))


def neighbours(vectors: torch.Tensor, chars: list[str], queries: list[str], k: int = 5) -> dict[str, list[tuple]]:
    """For each query character in the vocabulary: its k nearest other characters by cosine similarity."""
    unit = torch.nn.functional.normalize(vectors.double(), dim=1)
    sims = unit @ unit.T
    index = {c: i for i, c in enumerate(chars)}
    found = {}
    for q in queries:
        if q not in index:
            continue
        row = sims[index[q]].clone()
        row[index[q]] = -2.0
        top = torch.topk(row, min(k, len(chars) - 1))
        found[q] = [(chars[j], float(v)) for v, j in zip(top.values.tolist(), top.indices.tolist(), strict=True)]
    return found


def default_queries(chars: list[str]) -> list[str]:
    """Vowels, digits, and capitals if the text keeps case: the characters whose company is telling."""
    wanted = list("aeiou") + list("0123456789")[:3] + [c for c in "ETAI" if c in chars][:2] + [".", " "]
    return [c for c in wanted if c in chars]
