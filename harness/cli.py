"""The `harness` command: argument parsing and printing only; the work lives in the other modules."""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

from harness import jsonsafe, precision
from harness.config import LR_SCHEDULES, Budget, TrainConfig
from harness.corpus import DEFAULT_SPEC, DEFAULT_SPLIT, CorpusOptions, load_corpus
from harness.device import resolve_device
from harness.errors import HarnessError
from harness.models import FAMILIES
from harness.progress import ProgressLine, format_param, format_rate, format_seconds

DEFAULTS = TrainConfig()


def add_corpus_args(parser: argparse.ArgumentParser, default: str | None = DEFAULT_SPEC) -> None:
    group = parser.add_argument_group("corpus")
    group.add_argument("--corpus", default=default,
                       help=f"file path, builtin:pydoc or gutenberg:ID (default {default})")
    group.add_argument("--encoding", default="utf-8", help="text encoding of a corpus file (default utf-8)")
    group.add_argument("--no-lowercase", dest="lowercase", action="store_false",
                       help="keep case (default: lower-case the text, as the course runs did)")
    group.add_argument("--split", type=float, nargs=3, default=list(DEFAULT_SPLIT), metavar=("TRAIN", "VAL", "TEST"),
                       help="contiguous train/validation/test fractions (default 0.9 0.05 0.05)")


def corpus_options(args: argparse.Namespace) -> CorpusOptions:
    return CorpusOptions(lowercase=args.lowercase, split=tuple(args.split), encoding=args.encoding)


def add_train_parser(sub) -> None:
    p = sub.add_parser("train", help="train one configuration under a budget",
                       description="Train one model under a budget; keeps the best checkpoint on held-out text.")
    add_corpus_args(p)
    m = p.add_argument_group("model and optimizer (defaults: the course's LSTM generator)")
    m.add_argument("--model", default=DEFAULTS.model, choices=FAMILIES)
    m.add_argument("--embedding-dim", type=int, default=DEFAULTS.embedding_dim)
    m.add_argument("--hidden-dim", type=int, default=DEFAULTS.hidden_dim)
    m.add_argument("--layers", type=int, default=DEFAULTS.layers)
    m.add_argument("--dropout", type=float, default=DEFAULTS.dropout)
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
    m.add_argument("--weight-decay", type=float, default=DEFAULTS.weight_decay)
    m.add_argument("--grad-clip", type=float, default=DEFAULTS.grad_clip, help="max gradient norm; 0 turns it off")
    m.add_argument("--seed", type=int, default=DEFAULTS.seed)
    r = p.add_argument_group("run")
    r.add_argument("--budget", default="60s",
                   help="training time on the device (90s, 5m), predicted characters (500k) or epochs (3ep)")
    r.add_argument("--evals", type=int, default=10, help="evaluations on held-out text over the budget (default 10)")
    r.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto)")
    r.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16", "fp16"),
                   help="numeric precision on CUDA: auto (fastest mode a probe confirms), fp32 (TF32 off), bf16, "
                        "fp16 (with a gradient scaler); refused where the device or torch cannot honour it. "
                        "CPU: fp32 (default auto)")
    r.add_argument("--amp", dest="precision", choices=("auto", "bf16", "off"), help=argparse.SUPPRESS)
    r.add_argument("--out", type=Path, default=None, help="run directory (default results/train/<time>)")
    r.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    p.set_defaults(handler=cmd_train)


def cmd_train(args: argparse.Namespace) -> int:
    from harness.train import train

    config = TrainConfig(
        model=args.model, embedding_dim=args.embedding_dim, hidden_dim=args.hidden_dim, layers=args.layers,
        dropout=args.dropout, seq_len=args.seq_len, batch_size=args.batch_size, lr=args.lr,
        weight_decay=args.weight_decay, grad_clip=args.grad_clip, seed=args.seed, lr_schedule=args.lr_schedule,
        lr_warmup=args.lr_warmup, lr_decay=args.lr_decay, lr_min_ratio=args.lr_min_ratio,
    ).validate()
    budget = Budget.parse(args.budget)
    if args.evals < 1:
        raise HarnessError(f"--evals must be at least 1, got {args.evals}")
    device = resolve_device(args.device)
    corpus = load_corpus(args.corpus, corpus_options(args))
    corpus.check_fits(config.seq_len, config.batch_size)
    out = args.out or unique_run_dir(Path("results") / "train" / time.strftime("%Y%m%d-%H%M%S"))
    make_dir(out, "--out")

    line = ProgressLine()
    line.message(f"corpus {corpus.name}: {len(corpus.text):,} chars, vocabulary {len(corpus.vocab)}, "
                 f"train/val/test {len(corpus.train):,}/{len(corpus.val):,}/{len(corpus.test):,}; "
                 f"unigram baseline {corpus.unigram_entropy_bits():.3f} bpc")
    line.message(f"{config.model} on {device}, budget {budget}, writing to {out}")

    from harness.models import flops_per_char
    from harness.telemetry import Telemetry, cost_summary, matmul_tflops

    telemetry = Telemetry(device)
    # Measured once before training, so the live MFU below costs nothing while the run is timed.
    flops_per_s_peak = matmul_tflops(device) * 1e12
    model_flops = flops_per_char(config.model, len(corpus.vocab), config.embedding_dim, config.hidden_dim,
                                 config.layers)

    def on_progress(p) -> None:
        val = f" | val {p.last_val_bpc:.3f} bpc" if p.last_val_bpc is not None else ""
        mfu = model_flops * p.chars_per_s / flops_per_s_peak * 100
        line.update(p.fraction, f"step {p.step} | loss {p.loss:.3f} | {format_rate(p.chars_per_s)} chars/s | "
                                f"MFU {mfu:.1f}%{val} | {live_device_text(telemetry.latest())}"
                                f"{format_seconds(p.eta_seconds)} left")

    def on_eval(point) -> None:
        line.message(f"eval {point.index:>2}: step {point.step:>6}  val {point.loss:.4f} nats  "
                     f"{point.bpc:.4f} bpc  ppl {point.ppl:.3f}  at {point.device_seconds:.1f} device-s")

    try:
        with telemetry:
            result = train(config, corpus, budget, device, out_dir=out, evals=args.evals,
                           precision=precision.normalize(args.precision),
                           on_eval=on_eval, on_progress=on_progress, telemetry=telemetry)
    except KeyboardInterrupt:
        line.close()
        kept = out / "best.pt"
        print(f"harness: interrupted; {'best checkpoint kept at ' + str(kept) if kept.exists() else 'nothing saved'}",
              file=sys.stderr)
        return 130
    line.close()
    summary = result.summary()
    summary["telemetry"] = cost_summary(telemetry, summary)
    summary["telemetry"]["samples_csv"] = str(telemetry.save_csv(out / "telemetry.csv"))
    (out / "result.json").write_text(jsonsafe.dumps(summary, indent=2) + "\n")
    if args.json:
        print(jsonsafe.dumps(summary))
    else:
        print_train_summary(summary, out)
    return 0 if result.status == "completed" else 1


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
          f"{format_rate(s['train_chars_per_s'])} chars/s ({s['achieved_tflops'] * 1e3:.2f} model GFLOP/s)")
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
    print(f"MFU               {fmt(t['mfu'] * 100 if t['mfu'] is not None else None, '.2f')}% of the measured "
          f"{t['matmul_tflops']:.2f} TFLOP/s matmul rate")
    if t["unsupported"]:
        print(f"not reported      {', '.join(t['unsupported'])} (the device answered NotSupported)")
    print(f"checkpoint        {s['checkpoint'] or '-'}")
    print(f"result            {out / 'result.json'}")


def add_generate_parsers(sub) -> None:
    p = sub.add_parser("generate", help="sample text from a checkpoint and score it",
                       description="Sample from a checkpoint at one or more temperatures; print samples and metrics.")
    p.add_argument("checkpoint", type=Path)
    p.add_argument("--prompt", default="the ")
    p.add_argument("--temperature", type=float, nargs="+", default=[0.5, 1.0, 1.5],
                   help="one or more temperatures; 0 is greedy (default 0.5 1.0 1.5)")
    p.add_argument("--length", type=int, default=200, help="characters to generate per sample (default 200)")
    p.add_argument("--samples", type=int, default=3, help="samples per temperature (default 3)")
    p.add_argument("--top-k", type=int, default=None)
    p.add_argument("--top-p", type=float, default=None)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--unknown", default="error", choices=("error", "drop", "unk"),
                   help="prompt symbols outside the vocabulary: error (default), drop them, or feed the unknown token")
    p.add_argument("--corpus", default=None,
                   help="training text for real-word share and novelty (default: the checkpoint's corpus)")
    p.add_argument("--device", default="auto")
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    p.set_defaults(handler=cmd_generate)

    e = sub.add_parser("evaluate", help="held-out loss, bits per character and perplexity of a checkpoint",
                       description="Evaluate a checkpoint on the test split of its corpus (or of --corpus).")
    e.add_argument("checkpoint", type=Path)
    e.add_argument("--corpus", default=None, help="corpus spec (default: the checkpoint's corpus)")
    e.add_argument("--split", default="test", choices=("test", "val"))
    e.add_argument("--device", default="auto")
    e.add_argument("--json", action="store_true")
    e.set_defaults(handler=cmd_evaluate)


def cmd_generate(args: argparse.Namespace) -> int:
    from harness.checkpoint import load_checkpoint
    from harness.generate import generate_and_score
    from harness.metrics import Reference
    from harness.train import checkpoint_corpus

    if args.length < 1 or args.samples < 1:
        raise HarnessError("--length and --samples must be at least 1")
    if any(t < 0 for t in args.temperature):
        raise HarnessError(f"temperatures must be >= 0, got {args.temperature}")
    ckpt = load_checkpoint(args.checkpoint, resolve_device(args.device))
    if (ckpt.meta.get("corpus") or {}).get("lowercase", True):
        args.prompt = args.prompt.lower()  # the model only ever saw lower-case text
    reference = None
    try:
        reference = Reference(checkpoint_corpus(ckpt.meta, args.corpus).train_text)
    except HarnessError as e:
        print(f"harness: warning: no training text for real-word share and novelty ({e})", file=sys.stderr)
    report = generate_and_score(ckpt.model, ckpt.vocab, args.prompt, args.length, args.temperature, args.samples,
                                args.seed, reference, top_k=args.top_k, top_p=args.top_p, unknown=args.unknown)
    if args.json:
        print(jsonsafe.dumps(report))
        return 0
    for group in report["temperatures"]:
        print(f"=== temperature {group['temperature']:g} ===")
        for i, text in enumerate(group["samples"], 1):
            print(f"[{i}] {args.prompt}{text}")
        print()
    names = list(report["temperatures"][0]["metrics"])
    print(f"{'metric':<22}" + "".join(f"{'T=' + format(g['temperature'], 'g'):>10}" for g in report["temperatures"]))
    for name in names:
        cells = "".join(f"{_cell(g['metrics'][name]):>10}" for g in report["temperatures"])
        print(f"{name:<22}{cells}")
    return 0


def _cell(value) -> str:
    if value is None:
        return "-"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def cmd_evaluate(args: argparse.Namespace) -> int:
    from harness.checkpoint import load_checkpoint
    from harness.train import checkpoint_corpus, evaluate_checkpoint

    ckpt = load_checkpoint(args.checkpoint, resolve_device(args.device))
    result = evaluate_checkpoint(ckpt, checkpoint_corpus(ckpt.meta, args.corpus), args.split)
    if args.json:
        print(jsonsafe.dumps(result))
        return 0
    print(f"{result['split']} split of {result['corpus']}: {result['chars']:,} chars")
    print(f"loss {result['loss']:.4f} nats/char   {result['bpc']:.4f} bits/char   perplexity {result['ppl']:.3f}")
    if result["unknown_symbols"]:
        print(f"symbols unseen in training (charged as the unknown symbol): {''.join(result['unknown_symbols'])!r}")
    return 0


def add_sweep_parsers(sub) -> None:
    p = sub.add_parser("sweep", help="run (or resume) an Optuna study from a study file",
                       description="Run an Optuna study over the study file's search space; the same command resumes.")
    p.add_argument("study", type=Path, help="study file (TOML), e.g. studies/demo.toml")
    p.add_argument("--trials", type=int, default=None, help="planned trials in the study (overrides the file)")
    p.add_argument("--timeout", default=None, help="stop starting trials after this long, e.g. 8h (overrides the file)")
    p.add_argument("--storage", default=None,
                   help="postgresql://user@host/db to share one study between machines (default: a journal "
                        "file in the results directory)")
    p.add_argument("--workers", type=int, default=1, help="worker processes on this machine (default 1)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda (default: the study file's, else auto)")
    p.add_argument("--corpus", default=None, help="corpus spec instead of the study file's (e.g. a local copy)")
    p.add_argument("--results", type=Path, default=None, help="results directory (default results/<study name>)")
    p.add_argument("--worker-index", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--plain-progress", action="store_true", help=argparse.SUPPRESS)
    p.set_defaults(handler=cmd_sweep)

    s = sub.add_parser("status", help="table of a study's trials and its best configuration",
                       description="Print the trials of a running or finished study.")
    s.add_argument("target", type=Path, help="study file (TOML) or its results directory")
    s.add_argument("--storage", default=None, help="the storage URL the sweep used, if not the default")
    s.add_argument("--results", type=Path, default=None, help="results directory, if the sweep used --results")
    s.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    s.set_defaults(handler=cmd_status)

    r = sub.add_parser("report", help="tables, figures and one HTML/Markdown report of a study",
                       description="Write results/<study>/report/: tables, seaborn figures, report.html and report.md.")
    r.add_argument("target", type=Path, help="study file (TOML) or its results directory")
    r.add_argument("--out", type=Path, default=None, help="report directory (default <results>/report)")
    r.add_argument("--format", default="png,svg", help="figure formats besides PNG: png,svg,pdf (default png,svg)")
    r.add_argument("--top", type=int, default=10, help="rows in the top tables (default 10)")
    r.add_argument("--storage", default=None, help="the storage URL the sweep used, if not the default")
    r.add_argument("--results", type=Path, default=None, help="results directory, if the sweep used --results")
    r.set_defaults(handler=cmd_report)


def add_confirm_parser(sub) -> None:
    c = sub.add_parser("confirm", help="retrain the top configurations with fresh seeds; judge them on the test split",
                       description="Is the winner's lead real? Retrains the top K configurations of a study with N "
                                   "fresh seeds each and evaluates every best checkpoint on the test split. Resumes "
                                   "like a sweep.")
    c.add_argument("target", type=Path, help="study file (TOML) or its results directory")
    c.add_argument("--top", type=int, default=3, help="configurations to confirm, best first (default 3)")
    c.add_argument("--seeds", type=int, default=3, help="fresh seeds per configuration (default 3)")
    c.add_argument("--budget", default=None, help="per-run budget (default: the study's per-trial budget)")
    c.add_argument("--workers", type=int, default=1, help="worker processes on this machine (default 1)")
    c.add_argument("--device", default="auto", help="auto, cpu, cuda (default: the study file's, else auto)")
    c.add_argument("--storage", default=None, help="the storage URL the sweep used, if not the default")
    c.add_argument("--results", type=Path, default=None, help="results directory, if the sweep used --results")
    c.add_argument("--json", action="store_true", help="print the confirmed ranking as one JSON line")
    c.add_argument("--worker-index", type=int, default=None, help=argparse.SUPPRESS)
    c.add_argument("--plain-progress", action="store_true", help=argparse.SUPPRESS)
    c.set_defaults(handler=cmd_confirm)


def study_spec_for(target: Path, results: Path | None, storage: str | None):
    """(spec, results dir) of a study named by its TOML file or by its results directory (spec as stored)."""
    from harness.confirm import spec_from_record
    from harness.resume import SPEC_ATTR
    from harness.study import results_dir_for
    from harness.studyfile import load_study

    if not target.is_dir():
        spec = load_study(target)
        return spec, results_dir_for(spec, results)
    _, study = load_study_target(target, results, storage)
    record = study.user_attrs.get(SPEC_ATTR)
    if not record:
        raise HarnessError(f"{target}: the study records no settings (run by an older harness); give its TOML file")
    return spec_from_record(record), target


def cmd_confirm(args: argparse.Namespace) -> int:
    from harness.confirm import RESULT_ATTR, confirm_name, confirmed, run_confirm
    from harness.study import SweepOptions, open_study

    spec, results_dir = study_spec_for(args.target, args.results, args.storage)
    if args.workers < 1:
        raise HarnessError(f"--workers must be at least 1, got {args.workers}")
    budget = Budget.parse(args.budget) if args.budget else None
    options = SweepOptions(results_dir=results_dir, storage_url=args.storage, device=args.device,
                           workers=args.workers, worker_index=args.worker_index, plain_progress=args.plain_progress)
    resolve_device(options.device if options.device != "auto" else spec.device)
    argv = ["confirm", str(args.target), "--top", str(args.top), "--seeds", str(args.seeds), "--device", args.device,
            "--results", str(results_dir)]
    for flag, value in (("--budget", args.budget), ("--storage", args.storage)):
        if value is not None:
            argv += [flag, str(value)]
    code = run_confirm(spec, options, args.top, args.seeds, budget, argv)
    if args.worker_index is not None or code not in (0, 3):
        return code
    from harness.confirm import confirm_spec

    study = open_study(confirm_spec(spec, args.top, args.seeds, budget), options, create=False)
    frame, lines = confirmed(study)
    ranking = frame.drop(columns=["params"]).to_dict("records") if not frame.empty else []
    study.set_user_attr(RESULT_ATTR, jsonsafe.finite({"ranking": ranking, "verdict": lines}))  # stored with the runs
    if args.json:
        print(jsonsafe.dumps({"study": confirm_name(spec.name), "ranking": ranking, "verdict": lines}))
        return code
    print_confirmed(frame, lines)
    return code


def print_confirmed(frame, lines: list[str]) -> None:
    if frame.empty:
        print("confirmed ranking: no run has finished")
        return
    print(f"{'rank':>4} {'trial':>5} {'runs':>4} {'test bpc':>9} {'sd':>7} {'95% interval':>17} {'val bpc':>8} "
          f"{'val rank':>8}  tied with")
    for r in frame.itertuples():
        interval = "-" if math.isnan(r.ci95_low) else f"{r.ci95_low:.4f}-{r.ci95_high:.4f}"
        sd = "-" if math.isnan(r.test_bpc_sd) else f"{r.test_bpc_sd:.4f}"
        print(f"{r.rank:>4} {'#' + str(r.trial):>5} {r.runs:>4} {r.test_bpc_mean:>9.4f} {sd:>7} {interval:>17} "
              f"{r.val_bpc:>8.4f} {r.val_rank:>8}  {r.tied_with or '-'}")
    for line in lines:
        print(f"verdict: {line}")


def load_study_target(target: Path, results: Path | None, storage: str | None):
    """A study file or a results directory -> (its results directory, the Optuna study)."""
    from harness.storage import JOURNAL_NAME, open_storage
    from harness.study import SweepOptions, open_study, results_dir_for
    from harness.studyfile import StudySpec, load_study

    if target.is_dir():
        import optuna

        if storage is None and not (target / JOURNAL_NAME).exists():
            raise HarnessError(f"{target} holds no {JOURNAL_NAME}; give the study's results directory or its TOML file")
        quiet = open_storage(target, storage, say=lambda _: None)  # open_study below says what is to say
        names = [s.study_name for s in optuna.get_all_study_summaries(quiet)]
        if not names:
            raise HarnessError(f"no study in {storage or target}")
        sweeps = [n for n in names if not n.endswith("/confirm")] or names
        name = target.name if target.name in sweeps else sweeps[0]
        spec = StudySpec(path=None, name=name)
        options = SweepOptions(results_dir=target, storage_url=storage)
        return target, open_study(spec, options, create=False)
    spec = load_study(target)
    options = SweepOptions(results_dir=results_dir_for(spec, results), storage_url=storage)
    if storage is None and not (options.results_dir / JOURNAL_NAME).exists():
        raise HarnessError(f"study {spec.name!r} has no results in {options.results_dir} yet; run harness sweep "
                           f"{target} first (or pass --results / --storage as the sweep had them)")
    return options.results_dir, open_study(spec, options, create=False)


def cmd_sweep(args: argparse.Namespace) -> int:
    from harness.config import parse_duration
    from harness.study import SweepOptions, results_dir_for, run_sweep
    from harness.studyfile import load_study

    spec = load_study(args.study)
    if args.corpus:
        spec.corpus = args.corpus
    if args.trials is not None and args.trials < 1:
        raise HarnessError(f"--trials must be at least 1, got {args.trials}")
    if args.workers < 1:
        raise HarnessError(f"--workers must be at least 1, got {args.workers}")
    options = SweepOptions(
        results_dir=results_dir_for(spec, args.results), storage_url=args.storage, device=args.device,
        trials=args.trials, timeout=parse_duration(args.timeout, "--timeout") if args.timeout else None,
        workers=args.workers, worker_index=args.worker_index, plain_progress=args.plain_progress,
    )
    resolve_device(options.device if options.device != "auto" else spec.device)
    argv = ["sweep", str(args.study), "--device", args.device, "--results", str(options.results_dir)]
    for flag, value in (("--trials", args.trials), ("--timeout", args.timeout), ("--storage", args.storage),
                        ("--corpus", args.corpus)):
        if value is not None:
            argv += [flag, str(value)]
    code = run_sweep(spec, options, argv)
    if args.worker_index is None and code in (0, 3):
        from harness.study import open_study, status_summary

        print_status(status_summary(open_study(spec, options, create=False)))
    return code


def cmd_status(args: argparse.Namespace) -> int:
    from harness.study import status_summary

    _, study = load_study_target(args.target, args.results, args.storage)
    summary = status_summary(study)
    if args.json:
        print(jsonsafe.dumps(summary))
    else:
        print_status(summary)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from harness.report import build_report

    if args.top < 1:
        raise HarnessError(f"--top must be at least 1, got {args.top}")
    results_dir, study = load_study_target(args.target, args.results, args.storage)
    out = args.out or results_dir / "report"
    make_dir(out, "--out")
    report = build_report(study, out, [f.strip() for f in args.format.split(",")], args.top)
    if report.partial:
        print("harness: note: the study is still running; this is a partial report", file=sys.stderr)
    print(f"report of {len(report.frame)} trials written to {out} in {report.seconds:.1f} s")
    print(f"  {out / 'report.html'} (self-contained), {out / 'report.md'}")
    print(f"  tables: trials.csv, trials.parquet, top.md, top.tex, param_summary.md; "
          f"figures: {', '.join(sorted({p.stem for p in report.files if p.suffix == '.png'}))}")
    return 0


def print_status(summary: dict) -> None:
    trials = summary["trials"]
    keys = sorted({k for t in trials for k in t["params"]})
    widths = {k: max(len(k), 8) for k in keys}
    header = f"{'#':>4} {'state':<9}" + "".join(f" {k:>{widths[k]}}" for k in keys) + f" {'bpc':>8} {'device-s':>9}  reason"
    print(f"study {summary['study']}: " + ", ".join(f"{n} {s.lower()}" for s, n in sorted(summary["counts"].items())))
    print(header)
    for t in trials:
        cells = "".join(f" {format_param(t['params'].get(k)):>{widths[k]}}" for k in keys)
        bpc = f"{t['bpc']:.4f}" if isinstance(t["bpc"], float) and math.isfinite(t["bpc"]) else "-"
        secs = f"{t['device_seconds']:.1f}" if t["device_seconds"] is not None else "-"
        link = f"retry of #{t['retry_of']}" if t.get("retry_of") is not None else ""
        why = "; ".join(x for x in (link, t["reason"] or "") if x)
        print(f"{t['number']:>4} {t['state']:<9}{cells} {bpc:>8} {secs:>9}  {why}")
    best = summary["best"]
    if best:
        params = ", ".join(f"{k}={format_param(v)}" for k, v in best["params"].items())
        print(f"best: trial {best['number']}, {best['bpc']:.4f} bpc held-out; {params}")
    else:
        print("best: no trial has completed yet")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="harness",
        description="Sweep and benchmark character-level language models: Optuna studies, NVML telemetry, "
                    "pandas/seaborn reports. Start with: harness sweep studies/demo.toml && harness report "
                    "studies/demo.toml")
    sub = parser.add_subparsers(dest="command", required=True)
    add_train_parser(sub)
    add_generate_parsers(sub)
    add_sweep_parsers(sub)
    add_confirm_parser(sub)
    from harness.cli_course import add_course_parsers

    add_course_parsers(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from harness import interrupts

    parser = build_parser()
    args = parser.parse_args(argv)
    interrupts.install()  # SIGTERM and SIGHUP stop a command the way Ctrl-C does
    try:
        return args.handler(args)
    except HarnessError as e:
        print(f"harness: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("harness: interrupted; nothing was lost (what was finished is kept)", file=sys.stderr)
        return 130
    finally:
        interrupts.restore()


if __name__ == "__main__":
    sys.exit(main())
