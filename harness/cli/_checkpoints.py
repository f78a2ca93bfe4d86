"""`harness generate` and `harness evaluate`: what a saved checkpoint writes, and how well it predicts held-out text."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from harness.common import HarnessError, dumps
from harness.measure import resolve_device
from harness.training import GenerateSpec

GENERATE = GenerateSpec()  # the defaults a study's [generate] uses too
CHECKPOINT_HELP = "a checkpoint (best.pt); with --trial N, the study file or results directory of trial N"


def add_trial_args(parser: argparse.ArgumentParser) -> None:
    """--trial N (with --results/--storage): name a study's trial instead of a checkpoint path."""
    group = parser.add_argument_group("a trial of a study instead of a checkpoint path")
    group.add_argument("--trial", type=int, default=None, help="use this trial's best checkpoint")
    group.add_argument("--results", type=Path, default=None, help="results directory, if the sweep used --results")
    group.add_argument("--storage", default=None, help="the storage URL the sweep used (postgresql://...)")


def checkpoint_path(target: Path, args: argparse.Namespace) -> Path:
    """The checkpoint to read: `target` itself, or trial --trial's on this machine (else one line on where it is)."""
    if getattr(args, "trial", None) is None:
        return target
    from harness.search import open_results, trial_checkpoint

    if target.is_file() and target.suffix != ".toml":
        raise HarnessError(f"with --trial {args.trial}, give the study file (.toml) or the results directory the "
                           f"trial belongs to, not {target}; or drop --trial to read that checkpoint")
    results_dir, study = open_results(target, args.results, args.storage)
    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    if args.trial not in trials:
        raise HarnessError(f"study {study.study_name!r} has no trial #{args.trial} (it has {len(trials)} trials)")
    return trial_checkpoint(trials[args.trial], results_dir)


def add_generate_parsers(sub) -> None:
    p = sub.add_parser("generate", help="sample text from a checkpoint and score it",
                       description="Sample from a checkpoint at one or more temperatures; print samples and metrics.")
    p.add_argument("checkpoint", type=Path, help=CHECKPOINT_HELP)
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
    add_trial_args(p)
    p.set_defaults(handler=cmd_generate)

    e = sub.add_parser("evaluate", help="held-out loss, bits per character and perplexity of a checkpoint",
                       description="Evaluate a checkpoint on the test split of its corpus (or of --corpus).")
    e.add_argument("checkpoint", type=Path, help=CHECKPOINT_HELP)
    e.add_argument("--corpus", default=None, help="corpus spec (default: the checkpoint's corpus)")
    e.add_argument("--split", default="test", choices=("test", "val"))
    e.add_argument("--device", default="auto")
    e.add_argument("--json", action="store_true")
    add_trial_args(e)
    e.add_argument("--dynamic", action="store_true",
                   help="also the dynamic figure: the model learns from each chunk after predicting it (Krause et "
                        "al. 2018); reported beside the static one, never instead of it")
    e.add_argument("--dynamic-lr", type=float, default=None, help="its SGD rate (default 0.05)")
    e.add_argument("--dynamic-decay", type=float, default=None,
                   help="its pull back towards the trained weights per chunk (default 0.01)")
    e.set_defaults(handler=cmd_evaluate)


def cmd_generate(args: argparse.Namespace) -> int:
    from harness.measure import Reference
    from harness.training import checkpoint_corpus, generate_and_score, load_checkpoint

    if args.length < 1 or args.samples < 1:
        raise HarnessError("--length and --samples must be at least 1")
    if any(t < 0 for t in args.temperature):
        raise HarnessError(f"temperatures must be >= 0, got {args.temperature}")
    ckpt = load_checkpoint(checkpoint_path(args.checkpoint, args), resolve_device(args.device))
    if (ckpt.meta.get("corpus") or {}).get("lowercase", True):
        args.prompt = args.prompt.lower()  # the model only ever saw lower-case text
    reference = None
    try:
        reference = Reference(checkpoint_corpus(ckpt.meta, args.corpus).train_text)
    except HarnessError as e:
        print(f"harness: warning: no training text for real-word share and novelty ({e})", file=sys.stderr)
    report = generate_and_score(ckpt.model, ckpt.vocab, args.prompt, args.length, args.temperature, args.samples,
                                args.seed, reference, top_k=args.top_k, top_p=args.top_p, unknown=args.unknown)
    if report["prompt_cropped"]:
        print(f"harness: note: the prompt is longer than this {ckpt.config.model}'s context of {ckpt.model.context} "
              f"characters; its first {report['prompt_cropped']} characters were left out", file=sys.stderr)
    if args.json:
        print(dumps(report))
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
    from harness.training import checkpoint_corpus, evaluate_checkpoint, load_checkpoint

    ckpt = load_checkpoint(checkpoint_path(args.checkpoint, args), resolve_device(args.device))
    options = {k: v for k, v in (("lr", args.dynamic_lr), ("decay", args.dynamic_decay)) if v is not None}
    if options and not args.dynamic:
        raise HarnessError("--dynamic-lr and --dynamic-decay set the dynamic evaluation: add --dynamic")
    result = evaluate_checkpoint(ckpt, checkpoint_corpus(ckpt.meta, args.corpus), args.split,
                                 dynamic=options if args.dynamic else None)
    if args.json:
        print(dumps(result))
        return 0
    print(f"{result['split']} split of {result['corpus']}: {result['chars']:,} chars")
    print(f"loss {result['loss']:.4f} nats/char   {result['bpc']:.4f} bits/char   perplexity {result['ppl']:.3f}")
    if args.dynamic:
        print(f"dynamic (learning from each {result['dynamic_chunk']}-char chunk after predicting it, lr "
              f"{result['dynamic_lr']:g}, decay {result['dynamic_decay']:g}): {result['dynamic_bpc']:.4f} bits/char, "
              f"{result['dynamic_bpc'] - result['bpc']:+.4f} against the static figure")
    if result["unknown_symbols"]:
        print(f"symbols unseen in training (charged as the unknown symbol): {''.join(result['unknown_symbols'])!r}")
    return 0
