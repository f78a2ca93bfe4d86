"""`harness train`: one configuration under a budget, with live throughput, MFU and device use."""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import replace
from pathlib import Path

from harness.common import HarnessError, ProgressLine, dumps, format_rate, format_seconds, write_json_atomic
from harness.data import DEFAULT_SPEC, DEFAULT_SPLIT, CorpusOptions, load_corpus
from harness.measure import SHARED_THRESHOLD, resolve_device
from harness.models import family_names
from harness.training import (
    EVAL_SPACINGS,
    LR_SCHEDULES,
    PRECISION_MODES,
    Budget,
    Evaluations,
    Observers,
    Start,
    TrainConfig,
    normalize_precision,
)

DEFAULTS = TrainConfig()


def add_corpus_args(parser: argparse.ArgumentParser, default: str | None = DEFAULT_SPEC) -> None:
    group = parser.add_argument_group("corpus")
    group.add_argument("--corpus", default=default,
                       help=f"file path, builtin:pydoc or gutenberg:ID (default {default})")
    group.add_argument("--encoding", default="utf-8", help="text encoding of a corpus file (default utf-8)")
    group.add_argument("--no-lowercase", dest="lowercase", action="store_false",
                       help="keep case (default: lower-case the text, as the course runs did)")
    group.add_argument("--max-chars", type=int, default=None,
                       help="only the text's first N characters (a short text the run passes many times)")
    group.add_argument("--split", type=float, nargs=3, default=list(DEFAULT_SPLIT), metavar=("TRAIN", "VAL", "TEST"),
                       help="contiguous train/validation/test fractions (default 0.9 0.05 0.05)")


def corpus_options(args: argparse.Namespace) -> CorpusOptions:
    return CorpusOptions(lowercase=args.lowercase, split=tuple(args.split), encoding=args.encoding,
                         max_chars=args.max_chars)


def add_regularizer_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("regularizers that act at every depth (lstm, gru, rnn; AWD-LSTM's; 0 is off)")
    g.add_argument("--embedding-drop", type=float, default=DEFAULTS.embedding_drop,
                   help="drop whole characters' embedding rows, per chunk")
    g.add_argument("--dropout-input", type=float, default=DEFAULTS.dropout_input,
                   help="locked dropout on the embedding's output (one mask per sequence for all time steps)")
    g.add_argument("--dropout-output", type=float, default=DEFAULTS.dropout_output,
                   help="locked dropout on the last layer's output")
    g.add_argument("--weight-drop", type=float, default=DEFAULTS.weight_drop,
                   help="DropConnect on the hidden-to-hidden matrices, one mask per chunk")
    g.add_argument("--decoupled-decay", action="store_true",
                   help="AdamW's decoupled --weight-decay (biases exempt) instead of Adam's L2")


def add_train_parser(sub) -> None:
    p = sub.add_parser("train", help="train one configuration under a budget",
                       description="Train one model under a budget; keeps the best checkpoint on held-out text.")
    add_corpus_args(p)
    m = p.add_argument_group("model and optimizer (defaults: the course's LSTM generator)")
    m.add_argument("--model", default=DEFAULTS.model, choices=family_names())
    m.add_argument("--embedding-dim", type=int, default=DEFAULTS.embedding_dim)
    m.add_argument("--hidden-dim", type=int, default=DEFAULTS.hidden_dim)
    m.add_argument("--layers", type=int, default=DEFAULTS.layers)
    m.add_argument("--dropout", type=float, default=DEFAULTS.dropout)
    m.add_argument("--heads", type=int, default=DEFAULTS.heads,
                   help="gpt: attention heads; --embedding-dim must divide by it (default %(default)s)")
    m.add_argument("--no-tie-embeddings", dest="tie_embeddings", action="store_false",
                   help="gpt: a separate output layer instead of the token embedding's transpose")
    add_regularizer_args(p)
    m.add_argument("--seq-len", type=int, default=DEFAULTS.seq_len)
    m.add_argument("--batch-size", type=int, default=DEFAULTS.batch_size)
    m.add_argument("--lr", type=float, default=DEFAULTS.lr, help="peak learning rate (default %(default)g)")
    m.add_argument("--lr-schedule", default=DEFAULTS.lr_schedule, choices=LR_SCHEDULES,
                   help="wsd: warm up, hold, decay over the last --lr-decay of the budget; cosine/linear: decay "
                        "from the warm-up on; each ends at --lr-min-ratio x lr exactly when the budget ends; "
                        "constant: the course recipe (default %(default)s)")
    m.add_argument("--lr-warmup", type=float, default=DEFAULTS.lr_warmup,
                   help="share of the budget spent ramping up (default %(default)g)")
    m.add_argument("--lr-decay", type=float, default=DEFAULTS.lr_decay,
                   help="share of the budget the wsd schedule decays over (default %(default)g)")
    m.add_argument("--lr-min-ratio", type=float, default=DEFAULTS.lr_min_ratio,
                   help="final learning rate / lr (default %(default)g)")
    m.add_argument("--weight-decay", type=float, default=DEFAULTS.weight_decay,
                   help="Adam's L2 for the recurrent families; AdamW's decoupled decay of matrices for gpt")
    m.add_argument("--beta1", type=float, default=DEFAULTS.beta1)
    m.add_argument("--beta2", type=float, default=DEFAULTS.beta2, help="(nanoGPT uses 0.99 for its small models)")
    m.add_argument("--grad-clip", type=float, default=DEFAULTS.grad_clip, help="max gradient norm; 0 turns it off")
    m.add_argument("--seed", type=int, default=DEFAULTS.seed)
    r = p.add_argument_group("run")
    r.add_argument("--budget", default="60s",
                   help="training time on the device (90s, 5m), predicted characters (500k) or epochs (3ep)")
    r.add_argument("--evals", type=int, default=10, help="evaluations on held-out text over the budget (default 10)")
    r.add_argument("--eval-spacing", default="even", choices=EVAL_SPACINGS,
                   help="even: at k/n of the budget; geometric: from 1/n^2 to 1 at a constant ratio, for runs "
                        "that pass the text many times and overfit early (default %(default)s)")
    r.add_argument("--patience", type=int, default=0,
                   help="stop after this many evaluations without a better held-out figure (0: off)")
    r.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto)")
    r.add_argument("--precision", default="auto", choices=PRECISION_MODES,
                   help="numeric precision on CUDA: auto (fastest mode a probe confirms), fp32 (TF32 off), bf16, "
                        "fp16 (with a gradient scaler); refused where the device or torch cannot honour it. "
                        "CPU: fp32 (default auto)")
    r.add_argument("--amp", dest="precision", choices=("auto", "bf16", "off"), help=argparse.SUPPRESS)
    r.add_argument("--out", type=Path, default=None, help="run directory (default results/train/<time>)")
    r.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    s = p.add_argument_group("replay a PBT schedule (the model, budget and corpus come from the study)")
    s.add_argument("--schedule-from", metavar="STUDY", default=None,
                   help="a PBT study's file or results directory: train its --trial's schedule from scratch")
    s.add_argument("--trial", type=int, default=None, help="the trial whose lineage's schedule to replay")
    p.set_defaults(handler=cmd_train)


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The run's configuration from the flags (the defaults: the course's LSTM generator)."""
    return TrainConfig(
        model=args.model, embedding_dim=args.embedding_dim, hidden_dim=args.hidden_dim, layers=args.layers,
        dropout=args.dropout, seq_len=args.seq_len, batch_size=args.batch_size, lr=args.lr,
        weight_decay=args.weight_decay, beta1=args.beta1, beta2=args.beta2, grad_clip=args.grad_clip, seed=args.seed,
        lr_schedule=args.lr_schedule, lr_warmup=args.lr_warmup, lr_decay=args.lr_decay, lr_min_ratio=args.lr_min_ratio, heads=args.heads,
        tie_embeddings=args.tie_embeddings, embedding_drop=args.embedding_drop, dropout_input=args.dropout_input,
        dropout_output=args.dropout_output, weight_drop=args.weight_drop, decoupled_decay=args.decoupled_decay,
    ).validate()


def run_config(args: argparse.Namespace):
    """(configuration, replay plan): from the flags, or from a PBT study's trial (`--schedule-from`, `--trial`)."""
    if args.schedule_from is None and args.trial is None:
        return config_from_args(args), None
    if args.schedule_from is None or args.trial is None:
        raise HarnessError("--schedule-from STUDY and --trial N go together: the PBT study and the trial whose "
                           "schedule to replay")
    from harness.search import replay_plan
    replay = replay_plan(args.schedule_from, args.trial, args.seed)
    return replay.config, replay


def cmd_train(args: argparse.Namespace) -> int:
    from harness.measure import Telemetry, cost_summary
    from harness.training import train

    config, replay = run_config(args)
    idle = [k for k in config.inactive() if getattr(config, k) != getattr(DEFAULTS, k)]
    if idle:
        print(f"harness: note: {', '.join(idle)} cannot act on {config.model} with {config.layers} layer(s); "
              f"{'it is' if len(idle) == 1 else 'they are'} ignored", file=sys.stderr)
    budget = Budget.parse(args.budget) if replay is None else replay.budget
    if args.evals < 1:
        raise HarnessError(f"--evals must be at least 1, got {args.evals}")
    if args.patience < 0:
        raise HarnessError(f"--patience is a number of evaluations without improvement (0: off), got {args.patience}")
    device = resolve_device(args.device)
    corpus = load_corpus(args.corpus, corpus_options(args)) if replay is None else \
        load_corpus(args.corpus if args.corpus != DEFAULT_SPEC else replay.corpus, replay.corpus_options)
    corpus.check_fits(config.seq_len, config.batch_size)
    out = args.out or unique_run_dir(Path("results") / "train" / time.strftime("%Y%m%d-%H%M%S"))
    make_dir(out, "--out")

    line = ProgressLine()
    line.message(f"corpus {corpus.name}: {len(corpus.text):,} chars, vocabulary {len(corpus.vocab)}, "
                 f"train/val/test {len(corpus.train):,}/{len(corpus.val):,}/{len(corpus.test):,}; "
                 f"unigram baseline {corpus.unigram_entropy_bits():.3f} bpc")
    line.message(f"{config.model} on {device}, {budget.words}, writing to {out}")

    telemetry = Telemetry(device)
    on_progress, on_eval = live_lines(line, telemetry, config, len(corpus.vocab), device,
                                      args.precision if args.precision in ("fp32", "bf16", "fp16") else "bf16")
    try:
        with telemetry:
            result = train(config, corpus, budget, device, out_dir=out,
                           evaluations=Evaluations(args.evals, args.eval_spacing, args.patience),
                           precision=normalize_precision(args.precision),
                           observers=Observers(on_eval=on_eval, on_progress=on_progress, telemetry=telemetry),
                           start=Start(phases=list(replay.phases)) if replay else None)
    except KeyboardInterrupt:
        line.close()
        kept = out / "best.pt"
        print(f"harness: interrupted; {'best checkpoint kept at ' + str(kept) if kept.exists() else 'nothing saved'}",
              file=sys.stderr)
        return 130
    line.close()
    summary = result.summary()
    if replay is not None:
        summary["schedule"] = replay.phases
        summary["schedule_from"] = {"study": replay.study, "trial": replay.trial}
    summary["telemetry"] = replace(cost_summary(telemetry, result),
                                   samples_csv=str(telemetry.save_csv(out / "telemetry.csv"))).summary()
    write_json_atomic(out / "result.json", summary)
    if args.json:
        print(dumps(summary))
    else:
        print_train_summary(summary, out)
    return 0 if result.status in ("completed", "stopped_early") else 1


def live_lines(line: ProgressLine, telemetry, config: TrainConfig, vocab_size: int, device, dtype: str):
    """The progress bar (throughput, MFU against the `dtype` matmul rate, device use) and the line each
    evaluation leaves behind. The summary's MFU uses the precision the run really had."""
    from harness.measure import matmul_ceiling, model_flops_utilization

    # Measured once before training, so the live MFU below costs nothing while the run is timed.
    ceiling = matmul_ceiling(device, dtype)
    model_flops = config.flops_per_char(vocab_size)

    def on_progress(p) -> None:
        val = f" | val {p.last_val_bpc:.3f} bpc" if p.last_val_bpc is not None else ""
        mfu = model_flops_utilization(model_flops * p.chars, p.train_seconds, p.train_wall_seconds, ceiling)
        line.update(p.fraction, f"step {p.step} | loss {p.loss:.3f} | {format_rate(p.chars_per_s)} chars/s | "
                                f"MFU {'-' if mfu is None else f'{mfu * 100:.1f}%'}{val} | "
                                f"{live_device_text(telemetry.latest())}"
                                f"{format_seconds(p.eta_seconds)} left")

    def on_eval(point) -> None:
        line.message(f"eval {point.index:>2}: step {point.step:>6}  val {point.loss:.4f} nats  "
                     f"{point.bpc:.4f} bpc  ppl {point.ppl:.3f}  at {point.device_seconds:.1f} device-s")

    return on_progress, on_eval


def unique_run_dir(base: Path) -> Path:
    """results/train/<time>, or <time>-2, -3... so two runs started in the same second never share files."""
    candidate, n = base, 1
    while candidate.exists():
        n += 1
        candidate = base.with_name(f"{base.name}-{n}")
    return candidate


def make_dir(path: Path, what: str) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise HarnessError(f"{what} {str(path)!r}: cannot create the directory ({e.strerror}); choose another") from None


def live_device_text(sample: dict) -> str:
    """GPU utilization and power beside the progress bar, or the process's CPU use without a GPU."""
    if sample.get("gpu_util") is not None:
        power = f" {sample['power_w']:.0f} W" if sample.get("power_w") is not None else ""
        return f"GPU {sample['gpu_util']:.0f}%{power} | "
    if sample.get("cpu_util") is not None:
        return f"CPU {sample['cpu_util']:.0f}% | "
    return ""


def print_train_summary(s: dict, out: Path) -> None:
    def fmt(value: float | None, spec: str) -> str:
        return "-" if value is None or not math.isfinite(value) else format(value, spec)

    print(f"status            {s['status']}" + (f" ({s['reason']})" if s["reason"] else ""))
    print(f"held-out best     {fmt(s['val_loss'], '.4f')} nats  {fmt(s['val_bpc'], '.4f')} bpc  "
          f"ppl {fmt(s['val_ppl'], '.3f')}  (step {s['best_step']})")
    print(f"held-out final    {fmt(s['final_val_loss'], '.4f')} nats  {fmt(s['final_val_bpc'], '.4f')} bpc  "
          f"ppl {fmt(s['final_val_ppl'], '.3f')}")
    print(f"training          {s['steps']} steps, {s['train_chars']:,} chars, "
          f"{format_rate(s['train_chars_per_s'])} chars/s ({s['achieved_tflops'] * 1e3:.2f} model GFLOP/s) "
          f"per {'fair-share ' if s['concurrency'] > SHARED_THRESHOLD else ''}device-second")
    print(f"device-seconds    {s['device_seconds']:.2f} (train {s['train_seconds']:.2f} + eval {s['eval_seconds']:.2f}); "
          f"wall {s['wall_seconds']:.2f}")
    print(f"parameters        {s['params']:,} on {s['device']}")
    print(f"precision         {s['precision']['summary']}: {s['precision']['reason']}")
    t = s["telemetry"]
    util = "GPU" if t["util_source"] == "gpu_util" else "process CPU"
    energy = (f"{t['energy_j']:.1f} J ({t['joules_per_char'] * 1e3:.3f} mJ/char training)"
              if t["energy_j"] is not None and t["joules_per_char"] is not None else "not measured on this device")
    power = f"; power mean {fmt(t['power_mean_w'], '.0f')} W" if t["telemetry_source"] == "nvml" else ""
    print(f"device            {t['telemetry_device']}: {util} utilization mean {fmt(t['util_mean'], '.0f')}%, "
          f"p95 {fmt(t['util_p95'], '.0f')}%{power}")
    print(f"energy            {energy}")
    peak = f"{t['peak_mem_bytes'] / 2**20:,.0f} MiB ({t['peak_mem_source']})" if t["peak_mem_bytes"] else "-"
    print(f"peak memory       {peak}")
    threads = (t.get("matmul_ceiling") or {}).get("threads")
    print(f"MFU               {fmt(t['mfu'] * 100 if t['mfu'] is not None else None, '.2f')}% of the measured "
          f"{t['matmul_tflops']:.2f} TFLOP/s matmul rate"
          f"{f' on {threads} CPU threads, per wall second (CPU runs side by side do not time-slice)' if threads else ''}")
    if t["unsupported"]:
        print(f"not reported      {', '.join(t['unsupported'])} (the device answered NotSupported)")
    print(f"checkpoint        {s['checkpoint'] or '-'}")
    print(f"result            {out / 'result.json'}")
