"""Sampling from a checkpoint: the state is carried, one model step per new character.

The course code re-ran the model over the last seq_len characters for every new character
(seq_len times the work, and a context cut at seq_len); here the prompt is read once and each
new character costs one recurrent step. All samples of one temperature are one batch.
Temperature 0 is greedy decoding; top-k and top-p (nucleus) filtering apply after temperature.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from harness.corpus import UNK, Vocab
from harness.errors import HarnessError
from harness.metrics import Reference, sample_metrics
from harness.models import CharModel

UNKNOWN_POLICIES = ("error", "drop", "unk")


@dataclass
class Samples:
    temperature: float
    prompt: str
    texts: list[str]  # the continuations, without the prompt


def encode_prompt(prompt: str, vocab: Vocab, unknown: str = "error") -> torch.Tensor:
    """The prompt as token ids; symbols outside the vocabulary follow the `unknown` policy."""
    if not prompt:
        raise HarnessError("the prompt is empty; give at least one character to start from (e.g. --prompt 'the ')")
    missing = vocab.missing(prompt)
    if missing:
        if unknown == "error":
            shown = ", ".join(repr(c) for c in missing)
            raise HarnessError(
                f"the prompt has symbols the model's vocabulary lacks: {shown}; rephrase the prompt, or pass "
                f"--unknown drop (leave them out) or --unknown unk (feed the unknown-symbol token)"
            )
        if unknown == "drop":
            prompt = "".join(c for c in prompt if c in vocab)
            if not prompt:
                raise HarnessError("the prompt has no symbol the model knows; give another prompt")
        elif unknown != "unk":
            raise HarnessError(f"unknown-symbol policy {unknown!r}; choose one of {', '.join(UNKNOWN_POLICIES)}")
    return vocab.encode(prompt)


def filter_logits(logits: torch.Tensor, top_k: int | None, top_p: float | None) -> torch.Tensor:
    """Mask (to -inf) everything outside the top-k and outside the smallest set with mass >= top-p."""
    if top_k is not None and 0 < top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1.0:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
        cumulative = torch.softmax(sorted_logits, dim=-1).cumsum(dim=-1)
        drop = cumulative - torch.softmax(sorted_logits, dim=-1) >= top_p  # keep the token that crosses top_p
        sorted_logits = sorted_logits.masked_fill(drop, float("-inf"))
        logits = torch.full_like(logits, float("-inf")).scatter(-1, order, sorted_logits)
    return logits


@torch.inference_mode()
def sample(model: CharModel, vocab: Vocab, prompt: str, length: int, temperature: float, samples: int = 1,
           top_k: int | None = None, top_p: float | None = None, seed: int | None = None,
           unknown: str = "error") -> Samples:
    """`samples` continuations of `length` characters at one temperature, generated as one batch."""
    if length < 0 or samples < 1 or temperature < 0:
        raise HarnessError("length must be >= 0, samples >= 1 and temperature >= 0")
    if top_p is not None and not 0 < top_p <= 1:
        raise HarnessError(f"top-p must be in (0, 1], got {top_p}")
    device = next(model.parameters()).device
    model.eval()
    generator = torch.Generator(device=device)
    generator.manual_seed(seed if seed is not None else int(torch.randint(0, 2**62, (1,))))
    tokens = encode_prompt(prompt, vocab, unknown).to(device).unsqueeze(0).expand(samples, -1)
    logits, state = model(tokens, None)
    logits = logits[:, -1].float()
    out = torch.empty(samples, length, dtype=torch.long, device=device)
    for i in range(length):
        if temperature == 0:
            nxt = logits.argmax(dim=-1, keepdim=True)
        else:
            probs = torch.softmax(filter_logits(logits / temperature, top_k, top_p), dim=-1)
            nxt = torch.multinomial(probs, 1, generator=generator)
        out[:, i] = nxt[:, 0]
        if i + 1 < length:
            logits, state = model(nxt, state)
            logits = logits[:, -1].float()
    texts = [vocab.decode(row).replace(UNK, "?") for row in out.cpu()]
    return Samples(temperature, prompt, texts)


def sample_temperatures(model: CharModel, vocab: Vocab, prompt: str, length: int, temperatures: list[float],
                        samples: int = 1, seed: int | None = None, **options) -> list[Samples]:
    """One batch per temperature; temperature i uses seed + i, so adding a temperature changes no other."""
    return [sample(model, vocab, prompt, length, t, samples, seed=None if seed is None else seed + i, **options)
            for i, t in enumerate(temperatures)]


def generate_and_score(model: CharModel, vocab: Vocab, prompt: str, length: int, temperatures: list[float],
                       samples: int, seed: int | None, reference: Reference | None = None, **options) -> dict:
    """Samples and their metrics per temperature, as the CLI prints them and the sweep stores them."""
    groups = sample_temperatures(model, vocab, prompt, length, temperatures, samples, seed, **options)
    return {
        "prompt": prompt,
        "length": length,
        "seed": seed,
        "temperatures": [
            {"temperature": g.temperature, "samples": g.texts, "metrics": sample_metrics(g.texts, reference)}
            for g in groups
        ],
    }
