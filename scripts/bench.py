"""Every speed claim of the harness, measured side by side in one run, ending in one table of ratios.

    python scripts/bench.py --corpus ../shared/corpora/theprince.txt --quick      # ~13 min on a 2-core CPU
    python scripts/bench.py --corpus ../shared/corpora/theprince.txt              # the full version (~45 min on CPU)
    python scripts/bench.py ... --only generation,families --markdown docs/performance.md

Sections (each prints its own table; the last table collects every target):
- ceiling: the device's measured dense matmul rate, the denominator of every MFU figure.
- throughput: train chars/s of the course recipe (scripts/course_recipe.py) and the harness at
  the course's configuration, alternating in rounds so drift in machine speed cancels out.
- batch: the harness at several batch sizes, held-out bpc at equal time; the best one is what
  "the harness at its best batch size" means in the next sections.
- quality: held-out bpc at equal time (short and long) of the recipe and the harness at its best
  batch, and the time the harness needs to reach the recipe's long-run figure.
- schedule: the budget-tied learning-rate schedules against a constant rate, equal characters.
- generation: the report's workload (3 temperatures x 3 samples x 200 characters) with the
  course's re-windowing sampler and the harness's one-batch sampler.
- telemetry: training with the sampler on and off, paired rounds.
- overhead: where a sweep's wall time goes (the demo study, and a study of long trials), from
  each trial's recorded timings and the wall clock of the whole `harness sweep` process.
- families: chars/s and MFU of every model family at the same width.
- gpt: the harness's gpt against scripts/gpt_recipe.py (a plain single-file trainer of the same
  transformer) at nanoGPT's CPU configuration and equal characters, alternating in rounds:
  chars/s and held-out bpc; then generation with the key/value cache against re-reading the window.
- gpu: NVML utilization of the course configuration, trials per hour with 1, 2 and 4 workers
  (only on a CUDA device).

All times are synchronized device time; each run's warm-up is untimed (harness: WARMUP_STEPS on a
throw-away copy; recipe: three steps on its own model). Times are wall-clock on a machine that
does nothing else: do not run it beside the test suite.
"""

from __future__ import annotations

import argparse
import io
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
from contextlib import redirect_stdout
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from course_recipe import rewindowing_sample, train_recipe  # noqa: E402
from gpt_recipe import NANOGPT_CPU, train_gpt_recipe  # noqa: E402

from harness import models  # noqa: E402
from harness.common import HarnessError  # noqa: E402
from harness.data import load_corpus  # noqa: E402
from harness.measure import Telemetry, fingerprint, matmul_tflops, resolve_device, synced_clock  # noqa: E402
from harness.models import family_names, flops_per_char  # noqa: E402
from harness.training import (  # noqa: E402
    Budget,
    Evaluations,
    Observers,
    TrainConfig,
    sample,
    sample_temperatures,
    train,
)

ROOT = Path(__file__).resolve().parent.parent
SECTIONS = ("ceiling", "throughput", "batch", "quality", "schedule", "generation", "telemetry", "overhead",
            "families", "gpt", "gpu")
COURSE = TrainConfig(lr_schedule="constant")  # the course's LSTM generator, Adam at a constant 1e-3
RATE_WITHOUT_RECIPE = 12_000  # chars/s the schedule section assumes when throughput did not run (a 2-core CPU's)
GENERATE = ([0.5, 1.0, 1.5], 3, 200, "the ")  # the demo study's [generate]: temperatures, samples, length, prompt

# quick / full sizes: seconds of training per run unless named otherwise
SIZES = {
    "quick": dict(rounds=2, throughput_s=8, batches=(32, 128), lrs=(1e-3, 3e-3), batch_s=15, short_s=20, long_s=60,
                  schedule_s=(20,), schedule_lrs=(3e-3,), telemetry_rounds=4, telemetry_chars="100k", demo_trials=4,
                  long_trial="60s", family_s=6, gpu_trial="4s", gpt_chars=300_000, gpt_rounds=2),
    "full": dict(rounds=3, throughput_s=30, batches=(32, 64, 128), lrs=(1e-3, 3e-3), batch_s=45, short_s=60,
                 long_s=300, schedule_s=(60, 120), schedule_lrs=(3e-3,), telemetry_rounds=8, telemetry_chars="300k",
                 demo_trials=12, long_trial="300s", family_s=20, gpu_trial="8s", gpt_chars=1_536_000, gpt_rounds=3),
}


class PlainResidualLayer(models.ResidualRNNLayer):
    """The residual recurrence as it ran before ResidualScan (before 2026-11-29): plain autograd, one op a step."""

    def forward(self, x, h):
        return models.residual_scan_reference(self.w_in(x), h, self.w_rec.weight)


class PlainResidualRNN(models.ResidualRNN):
    family = "residual_rnn_plain"
    layer_type = PlainResidualLayer


# The "before" side of the ResidualScan measurement, as a family of its own (the public extension point)
# rather than a patch of the library's layer: the measured model is built the way every model is.
PLAIN_RESIDUAL = replace(models.get_family("residual_rnn"), name="residual_rnn_plain", build=PlainResidualRNN,
                         description="residual tanh RNN, the recurrence in plain autograd (bench only)")


def toml_text(table: dict, prefix: str = "") -> str:
    """A study read with tomllib, written back: scalars and arrays first, then each sub-table under its header."""
    import json

    lines = [f"{key} = {json.dumps(value)}" for key, value in table.items() if not isinstance(value, dict)]
    for key, value in table.items():
        if isinstance(value, dict):
            name = f"{prefix}{key}"
            lines += ["", f"[{name}]", toml_text(value, f"{name}.")]
    return "\n".join(lines)


class Bench:
    def __init__(self, args: argparse.Namespace):
        self.device = resolve_device(args.device)
        self.corpus = load_corpus(args.corpus)
        self.corpus_spec = args.corpus
        self.size = SIZES["quick" if args.quick else "full"]
        self.claims: list[tuple[str, str, str, bool | None]] = []  # (what, measured, target, met)
        # what one section measures and later ones read (a section run alone with --only falls back):
        self.best = COURSE  # batch: the best (batch, lr) at equal time; read by quality
        self.trained_model = None  # quality: the recipe's trained model; read by generation
        self.recipe_rate: float | None = None  # throughput: the recipe's chars/s; read by batch and schedule
        self.peak: float | None = None  # ceiling: the measured matmul rate; read by the MFU sections

    def claim(self, what: str, measured: str, target: str = "", met: bool | None = None) -> None:
        self.claims.append((what, measured, target, met))

    def run_harness(self, config: TrainConfig, budget: float | Budget, evals: int = 1, telemetry=None,
                    precision: str = "auto"):
        """One harness run alone on the device (no occupancy registry); a number is seconds."""
        budget = budget if isinstance(budget, Budget) else Budget("seconds", budget)
        return train(config, self.corpus, budget, self.device, evaluations=Evaluations(evals), precision=precision,
                     observers=Observers(telemetry=telemetry), share_device=False)

    # ---- sections -------------------------------------------------------------------------------

    def ceiling(self) -> None:
        self.peak = matmul_tflops(self.device)
        kind = "bf16 4096^2" if self.device.type == "cuda" else "fp32 1024^2"
        print(f"measured dense matmul ({kind}): {self.peak:.3f} TFLOP/s")
        self.claim("matmul ceiling (the MFU denominator)", f"{self.peak:.3f} TFLOP/s")

    def throughput(self) -> None:
        s = self.size
        recipe, ours = [], []
        for i in range(s["rounds"]):
            for who in (("recipe", "harness") if i % 2 == 0 else ("harness", "recipe")):
                if who == "recipe":
                    recipe.append(train_recipe(COURSE, self.corpus, s["throughput_s"], self.device)["chars_per_s"])
                else:
                    ours.append(self.run_harness(COURSE, s["throughput_s"]).train_chars_per_s)
            print(f"round {i + 1}: recipe {recipe[-1]:>9,.0f} chars/s   harness {ours[-1]:>9,.0f} chars/s")
        ratio = statistics.median(b / a for a, b in zip(recipe, ours, strict=True))
        self.recipe_rate = statistics.median(recipe)
        print(f"median: recipe {self.recipe_rate:,.0f}, harness {statistics.median(ours):,.0f} chars/s; "
              f"median per-round ratio {ratio:.2f}x")
        self.claim("train chars/s, harness / recipe (course config, batch 32)", f"{ratio:.2f}x", ">= 1.0x",
                   ratio >= 1.0)

    def batch(self) -> None:
        s = self.size
        rows = []
        for b in s["batches"]:
            for lr in s["lrs"]:
                r = self.run_harness(TrainConfig(batch_size=b, lr=lr, lr_schedule="constant"), s["batch_s"])
                rows.append((b, lr, r.train_chars_per_s, r.best.bpc))
                print(f"batch {b:>4}, lr {lr:g}: {r.train_chars_per_s:>9,.0f} chars/s, held-out bpc after "
                      f"{s['batch_s']} s {r.best.bpc:.4f}")
        best = min(rows, key=lambda row: row[3])
        self.best = TrainConfig(batch_size=best[0], lr=best[1], lr_schedule="constant")
        base = self.recipe_rate
        rate = f"{best[2]:,.0f} chars/s" + (f" = {best[2] / base:.2f}x the recipe's" if base else "")
        print(f"best held-out bpc at equal time: batch {best[0]}, lr {best[1]:g} ({rate})")
        self.claim(f"best (batch, lr) for bpc at {s['batch_s']} s", f"{best[0]}, {best[1]:g} ({rate})")

    def quality(self) -> None:
        s = self.size
        short, long = s["short_s"], s["long_s"]
        base = train_recipe(COURSE, self.corpus, long, self.device, checkpoints=(short,))
        self.trained_model = base["model"]
        b_short, b_long = base["curve"][0][1], base["curve"][-1][1]
        evals = max(5, int(long // 10))
        print(f"{'run (constant lr: a point of a long run = a run of that length)':<66} {f'at {short:g} s':>9} "
              f"{f'at {long:g} s':>9}   reaches the recipe's {long:g}-s figure")
        print(f"{'course recipe (batch 32, lr 0.001)':<66} {b_short:>9.4f} {b_long:>9.4f}")
        for label, config in (("harness, course config (batch 32, lr 0.001)", COURSE),
                              (f"harness, best of 'batch' (batch {self.best.batch_size}, lr {self.best.lr:g})",
                               self.best)):
            run = self.run_harness(config, long, evals=evals)
            at_short = min(p.bpc for p in run.curve if p.train_seconds <= short * 1.05)
            reach = next((p.train_seconds for p in run.curve if p.bpc <= b_long), None)
            when = f"after {reach:.0f} s" if reach is not None else f"not within {long:g} s"
            print(f"{label:<66} {at_short:>9.4f} {run.best.bpc:>9.4f}   {when}")
            self.claim(f"{label}: bpc at {short:g} / {long:g} s (recipe {b_short:.3f} / {b_long:.3f})",
                       f"{at_short:.3f} / {run.best.bpc:.3f}")
            self.claim(f"{label}: time to the recipe's {long:g}-s bpc", when, f"<= {short:g} s",
                       reach is not None and reach <= short * 1.05)
        print(f"(evaluations every {long / evals:g} s of training; the recipe's {short:g}-s figure is read from its "
              f"{long:g}-s run with the clock stopped)")

    def schedule(self) -> None:
        """At equal characters, not equal time: runs on a CPU are then bit-reproducible, so speed noise
        cannot decide which schedule learns more (the rate is the recipe's measured one, or 12k/s)."""
        s = self.size
        rate = self.recipe_rate or RATE_WITHOUT_RECIPE
        for seconds in s["schedule_s"]:
            chars = int(round(seconds * rate, -3))
            for lr in s["schedule_lrs"]:
                figures = {}
                for schedule in ("constant", "wsd", "cosine"):
                    config = TrainConfig(batch_size=self.best.batch_size, lr=lr, lr_schedule=schedule)
                    r = self.run_harness(config, Budget("tokens", chars), evals=5)
                    figures[schedule] = r.best.bpc
                    print(f"{chars:,} chars (~{seconds:g} s), lr {lr:g}, {schedule:<8}: held-out bpc {r.best.bpc:.4f}  "
                          f"(curve {', '.join(f'{p.bpc:.3f}' for p in r.curve)})")
                for schedule in ("wsd", "cosine"):
                    gain = figures["constant"] - figures[schedule]
                    self.claim(f"{schedule} vs constant lr at {chars:,} chars (lr {lr:g}, batch {self.best.batch_size})",
                               f"{gain:.4f} bpc better" if gain >= 0 else f"{-gain:.4f} bpc worse")

    def generation(self) -> None:
        temperatures, samples, length, prompt = GENERATE
        model = self.trained_model
        if model is None:
            model = train_recipe(COURSE, self.corpus, 5, self.device)["model"]  # speed does not depend on weights
        vocab, total = self.corpus.vocab, len(temperatures) * samples * length
        import numpy as np

        np.random.seed(0)
        start = synced_clock(self.device)
        for t in temperatures:
            for _ in range(samples):
                rewindowing_sample(model, vocab, prompt, length, t, COURSE.seq_len, self.device)
        course_s = synced_clock(self.device) - start
        ours = []
        for _ in range(3):
            start = synced_clock(self.device)
            sample_temperatures(model, vocab, prompt, length, temperatures, samples, seed=0)
            ours.append(synced_clock(self.device) - start)
        ours_s = statistics.median(ours)
        before = []  # what the harness did before 2026-11-29: one batch per temperature
        for _ in range(3):
            start = synced_clock(self.device)
            for i, t in enumerate(temperatures):
                sample(model, vocab, prompt, length, t, samples, seed=i)
            before.append(synced_clock(self.device) - start)
        before_s = statistics.median(before)
        print(f"{len(temperatures)} temperatures x {samples} samples x {length} chars, course-sized LSTM")
        print(f"course re-windowing (window {COURSE.seq_len}, one sample at a time): {course_s:.3f} s, "
              f"{total / course_s:,.0f} chars/s")
        print(f"harness before (state carried, one batch per temperature; median of 3): {before_s:.3f} s, "
              f"{total / before_s:,.0f} chars/s")
        print(f"harness (state carried, every temperature in one batch; median of 3): {ours_s:.3f} s, "
              f"{total / ours_s:,.0f} chars/s")
        self.claim("generation, one batch for all temperatures / one per temperature", f"{before_s / ours_s:.2f}x")
        ratio = course_s / ours_s
        self.claim("generation chars/s, harness / course sampler", f"{ratio:.1f}x", ">= 20x", ratio >= 20)

    def telemetry(self) -> None:
        s = self.size
        config = TrainConfig(hidden_dim=128, embedding_dim=64, layers=1, dropout=0.0, lr_schedule="constant")
        budget = Budget.parse(s["telemetry_chars"])

        def run(on: bool) -> float:
            if not on:
                return self.run_harness(config, budget).train_chars_per_s
            with Telemetry(self.device) as tel:
                return self.run_harness(config, budget, telemetry=tel).train_chars_per_s

        off, on = [], []
        for i in range(s["telemetry_rounds"]):
            for flag in ((False, True) if i % 2 == 0 else (True, False)):
                (on if flag else off).append(run(flag))
        paired = statistics.median(b / a for a, b in zip(off, on, strict=True))
        spread = statistics.pstdev(off) / statistics.median(off) * 100
        print(f"{len(off)} paired rounds of {budget} (LSTM H128): off {statistics.median(off):,.0f}, "
              f"on {statistics.median(on):,.0f} chars/s; median on/off {paired:.4f}; spread with it off {spread:.1f}%")
        overhead = (1 - paired) * 100
        # A paired median below the rounds' own spread cannot tell 1% from 0: say so instead of "met".
        resolved = spread < 1.0 or overhead >= 1.0
        self.claim("telemetry overhead (sampler at 4 Hz)", f"{overhead:+.2f}% (spread {spread:.1f}%)", "< 1%",
                   overhead < 1.0 if resolved else None)

    def overhead(self) -> None:
        s = self.size
        with tempfile.TemporaryDirectory() as tmp:
            demo = self.sweep(ROOT / "studies" / "demo.toml", Path(tmp) / "demo", corpus=None,
                              extra=["--trials", str(s["demo_trials"])])
            self.show_overhead(f"demo study (builtin:pydoc, {s['demo_trials']} trials x 12 s)", demo, 0.15)
            long_file = Path(tmp) / "long.toml"
            study = tomllib.loads((ROOT / "studies" / "demo.toml").read_text())
            study["study"].update(name="long", trials=1)
            study["budget"].update(per_trial=s["long_trial"], evals=10)
            long_file.write_text(toml_text(study))
            long = self.sweep(long_file, Path(tmp) / "long", corpus=self.corpus_spec)
            self.show_overhead(f"one {s['long_trial']} trial on {self.corpus.name} (10 evaluations)", long, 0.05)

    def sweep(self, study_file: Path, results: Path, corpus: str | None, extra: tuple[str, ...] = ()) -> dict:
        import optuna

        command = [sys.executable, "-m", "harness", "sweep", str(study_file), "--results", str(results),
                   "--device", str(self.device), "--plain-progress", *extra]
        if corpus:
            command += ["--corpus", corpus]
        start = time.perf_counter()
        done = subprocess.run(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        wall = time.perf_counter() - start
        if done.returncode != 0:
            raise HarnessError(f"`{' '.join(command)}` failed (exit {done.returncode}): "
                               f"{done.stderr.strip()[-1500:]}")
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        storage = JournalStorage(JournalFileBackend(str(results / "study.journal")))
        name = optuna.get_all_study_summaries(storage)[0].study_name
        trials = optuna.load_study(study_name=name, storage=storage).get_trials(deepcopy=False)
        phases: dict[str, float] = {}
        for t in trials:
            for key, value in (t.user_attrs.get("timings") or {}).items():
                phases[key] = phases.get(key, 0.0) + value
        return {"wall": wall, "trials": len(trials), "phases": phases}

    def show_overhead(self, label: str, run: dict, target: float) -> None:
        wall, phases = run["wall"], run["phases"]
        between = wall - phases.get("total", 0.0)
        print(f"{label}: {run['trials']} trials, `harness sweep` wall {wall:.1f} s")
        order = ("train", "setup", "warmup", "eval", "checkpoint", "loop", "generation", "record")
        for key in order:
            print(f"  {key:<11} {phases.get(key, 0.0):>8.2f} s  {phases.get(key, 0.0) / wall * 100:>5.1f}%")
        print(f"  {'outside':<11} {between:>8.2f} s  {between / wall * 100:>5.1f}%  (process start, imports, "
              f"storage, sampler, between trials)")
        share = 1 - phases.get("train", 0.0) / wall
        self.claim(f"non-training share of a sweep: {label}", f"{share * 100:.1f}%", f"< {target * 100:g}%",
                   share < target)

    def families(self) -> None:
        s = self.size
        peak = self.peak or matmul_tflops(self.device)
        rates = {}
        print(f"{'family':<13} {'chars/s':>10} {'TFLOP/s':>8} {'MFU':>7}   (E128, H256, 2 layers, batch 32, "
              f"{s['family_s']} s)")
        for family in family_names():
            config = TrainConfig(model=family, lr_schedule="constant")
            r = self.run_harness(config, s["family_s"])
            flops = flops_per_char(family, len(self.corpus.vocab), config.embedding_dim, config.hidden_dim,
                                   config.layers, config.seq_len)
            achieved = flops * r.train_chars_per_s / 1e12
            rates[family] = r.train_chars_per_s
            print(f"{family:<13} {r.train_chars_per_s:>10,.0f} {achieved:>8.4f} {achieved / peak * 100:>6.1f}%")
            self.claim(f"{family}: chars/s, MFU", f"{r.train_chars_per_s:,.0f}, {achieved / peak * 100:.1f}%")
        ratio = rates["residual_rnn"] / rates["rnn"]
        print(f"residual RNN (its own time loop) / fused tanh RNN: {ratio:.2f}x the chars/s")
        self.claim("residual RNN chars/s / fused tanh RNN (same width)", f"{ratio:.2f}x")
        # before 2026-11-29 the residual recurrence ran through plain autograd, four graph nodes a step. Both
        # sides in fp32: under bf16 autocast the plain loop's fp32 state promotes every step to fp32, so a
        # bf16 ResidualScan against it would compare precisions, not implementations.
        residual = TrainConfig(model="residual_rnn", lr_schedule="constant")
        scan_rate = self.run_harness(residual, s["family_s"], precision="fp32").train_chars_per_s
        models.register_family(PLAIN_RESIDUAL, replace=True)
        plain = self.run_harness(replace(residual, model=PLAIN_RESIDUAL.name), s["family_s"], precision="fp32")
        speedup = scan_rate / plain.train_chars_per_s
        print(f"residual RNN, both fp32: ResidualScan {scan_rate:,.0f} chars/s, plain autograd (before) "
              f"{plain.train_chars_per_s:,.0f} chars/s; ResidualScan is {speedup:.2f}x that")
        self.claim("residual RNN, ResidualScan / plain-autograd loop", f"{speedup:.2f}x")

    def gpt(self) -> None:
        """Equal characters (nanoGPT's 2000 x 12 x 64 in the full version), the same configuration and seed
        on both sides; only the loop differs. Each round alternates who goes first."""
        s, config = self.size, NANOGPT_CPU
        budget = Budget("tokens", s["gpt_chars"])
        recipe, ours = [], []
        for i in range(s["gpt_rounds"]):
            seeded = TrainConfig(**{**config.to_dict(), "seed": config.seed + i})
            for who in (("recipe", "harness") if i % 2 == 0 else ("harness", "recipe")):
                if who == "recipe":
                    r = train_gpt_recipe(seeded, self.corpus, s["gpt_chars"], self.device)
                    recipe.append((r["chars_per_s"], r["val_bpc"]))
                else:
                    run = self.run_harness(seeded, budget, evals=1)
                    ours.append((run.train_chars_per_s, run.final.bpc))
            print(f"round {i + 1} (seed {seeded.seed}): recipe {recipe[-1][0]:>9,.0f} chars/s, {recipe[-1][1]:.4f} bpc"
                  f"   harness {ours[-1][0]:>9,.0f} chars/s, {ours[-1][1]:.4f} bpc")
        ratio = statistics.median(b[0] / a[0] for a, b in zip(recipe, ours, strict=True))
        gap = statistics.median(b[1] - a[1] for a, b in zip(recipe, ours, strict=True))
        spread = max(r[1] for r in recipe) - min(r[1] for r in recipe)
        print(f"gpt (E{config.embedding_dim}, {config.layers} blocks, {config.heads} heads, context {config.seq_len}, "
              f"batch {config.batch_size}), {s['gpt_chars']:,} chars: median chars/s ratio {ratio:.2f}x; held-out "
              f"bpc harness - recipe {gap:+.4f} (the recipe's own spread over seeds {spread:.4f})")
        self.claim("gpt train chars/s, harness / gpt_recipe.py (nanoGPT CPU config)", f"{ratio:.2f}x", ">= 1.0x",
                   ratio >= 1.0)
        self.claim(f"gpt held-out bpc at {s['gpt_chars']:,} chars, harness - recipe", f"{gap:+.4f}",
                   "<= +0.02", gap <= 0.02)
        self.gpt_generation(config)

    def gpt_generation(self, config: TrainConfig) -> None:
        """The report's generation workload on a gpt: the key/value cache against re-reading the window."""
        import torch

        temperatures, samples, length, prompt = GENERATE
        model = config.build(len(self.corpus.vocab)).to(self.device).eval()
        vocab, total = self.corpus.vocab, len(temperatures) * samples * length
        cached = []
        for _ in range(3):
            start = synced_clock(self.device)
            sample_temperatures(model, vocab, prompt, length, temperatures, samples, seed=0)
            cached.append(synced_clock(self.device) - start)
        rows = len(temperatures) * samples
        with torch.inference_mode():  # no cache: every character re-reads up to `context` characters, one batch
            tokens = vocab.encode(prompt).to(self.device).unsqueeze(0).expand(rows, -1)
            start = synced_clock(self.device)
            for _ in range(length):
                logits, _ = model(tokens[:, -config.seq_len:], None)
                nxt = torch.multinomial(torch.softmax(logits[:, -1].float(), dim=-1), 1)
                tokens = torch.cat([tokens, nxt], dim=1)
            window_s = synced_clock(self.device) - start
        cached_s = statistics.median(cached)
        print(f"gpt generation, {len(temperatures)} temperatures x {samples} samples x {length} chars: key/value cache "
              f"{total / cached_s:,.0f} chars/s, re-reading the window {total / window_s:,.0f} chars/s")
        self.claim("gpt generation chars/s, key/value cache / re-reading the window", f"{window_s / cached_s:.2f}x")

    def gpu(self) -> None:
        if self.device.type != "cuda":
            print("skipped: no CUDA device (NVML utilization and workers per GPU need one; scripts/gpu_check.sh)")
            return
        for name, runner in (("course recipe", lambda: train_recipe(COURSE, self.corpus, 20, self.device)),
                             ("harness", lambda: self.run_harness(COURSE, 20))):
            with Telemetry(self.device) as tel:
                runner()
            util = tel.summary().get("util_mean")
            print(f"{name}: NVML utilization during 20 s of training: {util}")
            self.claim(f"GPU utilization, {name} (NVML, course config)", f"{util}", ">= 90%" if name == "harness"
                       else "", None if util is None or name != "harness" else util >= 90)
        out = subprocess.run([sys.executable, "scripts/bench_workers.py", "--device", "cuda", "--workers", "1", "2",
                              "4", "--budget", self.size["gpu_trial"]], cwd=ROOT, capture_output=True, text=True)
        print(out.stdout[-4000:])
        if out.returncode != 0:
            print(f"bench_workers.py failed (exit {out.returncode}):\n{out.stderr[-3000:]}")
        self.claim("bench_workers.py (1, 2, 4 workers on this GPU)", "ran" if out.returncode == 0 else
                   f"failed (exit {out.returncode})", "runs", out.returncode == 0)


def summary_table(claims: list[tuple[str, str, str, bool | None]], markdown: bool) -> str:
    mark = {True: "met", False: "MISSED", None: ""}
    if markdown:
        lines = ["| measurement | result | target | |", "| --- | --- | --- | --- |"]
        lines += [f"| {w} | {m} | {t} | {mark[ok]} |" for w, m, t, ok in claims]
        return "\n".join(lines)
    width = max(len(w) for w, *_ in claims) if claims else 20
    lines = [f"{'measurement':<{width}}  {'result':<36} {'target':<10} "]
    lines += [f"{w:<{width}}  {m:<36} {t:<10} {mark[ok]}" for w, m, t, ok in claims]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", default="builtin:pydoc", help="corpus spec or path (The Prince is the reference)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--quick", action="store_true", help="a few-minute CPU version")
    parser.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated sections: {', '.join(SECTIONS)}")
    parser.add_argument("--markdown", type=Path, default=None, help="also write the output there (docs/performance.md)")
    args = parser.parse_args()
    chosen = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = [s for s in chosen if s not in SECTIONS]
    if unknown:
        parser.error(f"unknown section(s) {', '.join(unknown)}; choose from {', '.join(SECTIONS)}")
    try:
        bench = Bench(args)
    except HarnessError as e:  # a bad --corpus or --device: one line, like the harness's own commands
        parser.exit(2, f"bench.py: error: {e}\n")
    fp = fingerprint(bench.device)
    command = "python " + " ".join(shlex.quote(a) for a in [os.path.relpath(__file__, ROOT), *sys.argv[1:]])
    head = (f"{time.strftime('%Y-%m-%d %H:%M %Z')} | {fp['device_name']} ({fp['machine']}, {os.cpu_count()} cores, "
            f"{fp['cpu_threads']} torch threads) | torch {fp['torch']} | corpus {bench.corpus.name} "
            f"({len(bench.corpus.train):,} training chars) | {'quick' if args.quick else 'full'}\n{command}")
    log = io.StringIO()

    class Tee(io.TextIOBase):
        def write(self, text: str) -> int:
            sys.__stdout__.write(text)
            sys.__stdout__.flush()
            return log.write(text)

    started = time.perf_counter()
    with redirect_stdout(Tee()):
        print(head)
        for name in SECTIONS:
            if name in chosen:
                print(f"\n== {name} ==")
                section_start = time.perf_counter()
                try:
                    getattr(bench, name)()
                except HarnessError as e:
                    parser.exit(2, f"bench.py: error in section {name}: {e}\n")
                print(f"({name}: {time.perf_counter() - section_start:.0f} s)")
        print(f"\n== summary ({(time.perf_counter() - started) / 60:.1f} min) ==")
        print(summary_table(bench.claims, markdown=False))
    if args.markdown:
        args.markdown.write_text(
            f"# Performance\n\nThe latest output of `scripts/bench.py` ({head.splitlines()[0]}):\n\n"
            f"```\n{command}\n```\n\n{summary_table(bench.claims, markdown=True)}\n\n"
            f"Full output:\n\n```\n{log.getvalue().rstrip()}\n```\n")
        print(f"wrote {args.markdown}")


if __name__ == "__main__":
    main()
