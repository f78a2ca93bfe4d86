"""Sampling from a checkpoint: the state is carried, one model step per new character.

The course code re-ran the model over the last seq_len characters for every new character
(seq_len times the work, and a context cut at seq_len); here the prompt is read once and each
new character costs one recurrent step. All samples of all temperatures are one batch.
Temperature 0 is greedy decoding; top-k and top-p (nucleus) filtering apply after temperature.

A windowed family (gpt) keeps a key/value cache instead of a recurrent state: the prompt is read
once and each new character attends to the cache (one position of work, not a pass over the
window; scripts/bench.py, "gpt generation", measures the difference). Its context is bounded, so a
prompt longer than it is cropped to its last `context` characters (said in `Samples.cropped`), and
when the cache is full the last context/2 characters are read again into a fresh one: every
character is generated with between context/2 and context characters before it, as in its
held-out evaluation.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from harness.common import HarnessError
from harness.data import UNK, Vocab
from harness.measure import Reference, sample_metrics
from harness.models import CharModel

UNKNOWN_POLICIES = ("error", "drop", "unk")


@dataclass
class GenerateSpec:
    """What to generate from a finished run: the defaults of `harness generate` and of a study's [generate]."""

    prompt: str = "the "
    temperatures: list[float] = field(default_factory=lambda: [0.5, 1.0, 1.5])
    length: int = 200
    samples: int = 3
    enabled: bool = True


@dataclass
class Samples:
    temperature: float
    prompt: str
    texts: list[str]  # the continuations, without the prompt
    cropped: int = 0  # characters cut from the prompt's start to fit the model's context


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


def draw(probs: torch.Tensor, uniforms: torch.Tensor) -> torch.Tensor:
    """Inverse-CDF sampling: row r takes the first index whose cumulative probability exceeds uniforms[r].

    The uniforms are drawn up front from each temperature's own generator, so one batch can hold
    every temperature while each keeps the random stream it would have alone.
    """
    cdf = probs.cumsum(dim=-1)
    picked = (cdf < uniforms.unsqueeze(-1) * cdf[:, -1:]).sum(dim=-1)
    return picked.clamp_(max=probs.shape[-1] - 1)


@torch.inference_mode()
def sample_batch(model: CharModel, vocab: Vocab, prompt: str, length: int, temperatures: list[float],
                 samples: int = 1, top_k: int | None = None, top_p: float | None = None,
                 seeds: list[int] | None = None, unknown: str = "error") -> list[Samples]:
    """`samples` continuations at each temperature, all generated as one batch (one model step per character).

    Temperature i draws from its own generator seeded with seeds[i], so adding a temperature
    changes no other's samples. The course's sampler re-ran the last seq_len characters for every
    new character, one sample at a time; one batch for the report's whole workload is what makes
    generation a negligible share of a trial (scripts/bench.py, "generation").
    """
    if length < 0 or samples < 1 or not temperatures or any(t < 0 for t in temperatures):
        raise HarnessError("length must be >= 0, samples >= 1 and every temperature >= 0")
    if top_p is not None and not 0 < top_p <= 1:
        raise HarnessError(f"top-p must be in (0, 1], got {top_p}")
    device = next(model.parameters()).device
    model.eval()
    seeds = seeds or [int(torch.randint(0, 2**62, (1,))) for _ in temperatures]
    uniforms = torch.cat([torch.rand(samples, length, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
                          for seed in seeds]).clamp_(min=1e-12).to(device)  # u = 0 could pick a masked token
    rows = len(temperatures) * samples
    temps = torch.tensor(temperatures, dtype=torch.float32, device=device).repeat_interleave(samples).unsqueeze(1)
    greedy = temps[:, 0] == 0
    safe_temps = torch.where(temps == 0, torch.ones_like(temps), temps)
    tokens = encode_prompt(prompt, vocab, unknown).to(device).unsqueeze(0).expand(rows, -1)
    context = model.context
    cropped = max(0, tokens.shape[1] - context) if context is not None else 0
    tokens = tokens[:, cropped:]
    logits, state = model(tokens, model.initial_state(rows))
    logits = logits[:, -1].float()
    out = torch.empty(rows, length, dtype=torch.long, device=device)
    for i in range(length):
        probs = torch.softmax(filter_logits(logits / safe_temps, top_k, top_p), dim=-1)
        nxt = torch.where(greedy, logits.argmax(dim=-1), draw(probs.double(), uniforms[:, i]))
        out[:, i] = nxt
        if i + 1 < length:
            if context is not None and state.length >= context:  # the cache is full: re-read the last context/2
                recent = torch.cat([tokens, out[:, : i + 1]], dim=1)[:, -max(1, context // 2):]
                logits, state = model(recent, model.initial_state(rows))
            else:
                logits, state = model(nxt.unsqueeze(1), state)
            logits = logits[:, -1].float()
    rows_text = [vocab.decode(row).replace(UNK, "?") for row in out.cpu()]
    return [Samples(t, prompt, rows_text[k * samples : (k + 1) * samples], cropped) for k, t in enumerate(temperatures)]


def sample(model: CharModel, vocab: Vocab, prompt: str, length: int, temperature: float, samples: int = 1,
           top_k: int | None = None, top_p: float | None = None, seed: int | None = None,
           unknown: str = "error") -> Samples:
    """`samples` continuations of `length` characters at one temperature, generated as one batch."""
    return sample_batch(model, vocab, prompt, length, [temperature], samples, top_k, top_p,
                        None if seed is None else [seed], unknown)[0]


def sample_temperatures(model: CharModel, vocab: Vocab, prompt: str, length: int, temperatures: list[float],
                        samples: int = 1, seed: int | None = None, **options) -> list[Samples]:
    """Every temperature in one batch; temperature i uses seed + i, so adding a temperature changes no other."""
    seeds = None if seed is None else [seed + i for i in range(len(temperatures))]
    return sample_batch(model, vocab, prompt, length, temperatures, samples, seeds=seeds, **options)


def generate_and_score(model: CharModel, vocab: Vocab, prompt: str, length: int, temperatures: list[float],
                       samples: int, seed: int | None, reference: Reference | None = None, **options) -> dict:
    """Samples and their metrics per temperature, as the CLI prints them and the sweep stores them."""
    groups = sample_temperatures(model, vocab, prompt, length, temperatures, samples, seed, **options)
    cropped = groups[0].cropped if groups else 0
    return {
        "prompt": prompt,
        "length": length,
        "seed": seed,
        "prompt_cropped": cropped,
        "temperatures": [
            {"temperature": g.temperature, "samples": g.texts, "metrics": sample_metrics(g.texts, reference)}
            for g in groups
        ],
    }
