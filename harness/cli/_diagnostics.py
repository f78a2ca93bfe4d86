"""`harness gradflow` and `harness embeddings`: the course's questions, asked of the user's own models."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from harness.cli._checkpoints import CHECKPOINT_HELP, add_trial_args, checkpoint_path
from harness.common import HarnessError, dumps
from harness.models import family_names


def add_course_parsers(sub) -> None:
    g = sub.add_parser("gradflow", help="how much gradient reaches the hidden state t steps back, per family",
                       description="|dJ/dh_t| for every t of held-out sequences (J: the loss at the last step), at "
                                   "initialization and for a trained checkpoint; a table and a figure.")
    g.add_argument("checkpoint", type=Path, nargs="*", help="trained checkpoints (best.pt); each also at its init")
    g.add_argument("--model", nargs="+", default=[], choices=family_names(), help="untrained families to profile")
    g.add_argument("--embedding-dim", type=int, default=64)
    g.add_argument("--hidden-dim", type=int, default=128)
    g.add_argument("--layers", type=int, default=1)
    g.add_argument("--corpus", default=None, help="corpus for --model (default builtin:pydoc; a checkpoint: its own)")
    g.add_argument("--steps", type=int, default=100, help="sequence length T (default 100)")
    g.add_argument("--sequences", type=int, default=64, help="held-out sequences averaged over (default 64)")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--out", type=Path, default=None,
                   help="figure path (default: gradflow.png beside the first checkpoint, else "
                        "results/gradflow/gradflow-<families>.png)")
    g.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    add_trial_args(g)
    g.set_defaults(handler=cmd_gradflow)

    e = sub.add_parser("embeddings", help="the learned character vectors: a 2-D PCA map and nearest neighbours",
                       description="Project a checkpoint's character embeddings to 2-D (PCA) and list the nearest "
                                   "neighbours (cosine) of vowels, digits and capitals.")
    e.add_argument("checkpoint", type=Path, help=CHECKPOINT_HELP)
    e.add_argument("--chars", default=None, help="characters whose neighbours to list (default: vowels, digits, ...)")
    e.add_argument("--neighbours", type=int, default=5)
    e.add_argument("--out", type=Path, default=None,
                   help="figure path (default: embeddings.png beside the checkpoint)")
    e.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    add_trial_args(e)
    e.set_defaults(handler=cmd_embeddings)


def cmd_gradflow(args: argparse.Namespace) -> int:
    from harness.data import DEFAULT_SPEC, CorpusOptions, load_corpus
    from harness.diagnostics import checkpoint_profiles, held_out_sequences, not_measured, profile
    from harness.models import build_model
    from harness.report import fig_gradflow

    if not args.checkpoint and not args.model:
        raise HarnessError("give a checkpoint (best.pt) or --model FAMILY [FAMILY ...] to profile untrained models")
    if args.steps < 2 or args.sequences < 1:
        raise HarnessError("--steps must be at least 2 and --sequences at least 1")
    profiles, notes = [], []
    if args.trial is not None and len(args.checkpoint) != 1:
        raise HarnessError("with --trial N give one study file or results directory, not checkpoints")
    checkpoints = [checkpoint_path(path, args) for path in args.checkpoint]
    for path in checkpoints:
        profiles += checkpoint_profiles(path, args.steps, args.sequences, args.seed)
    if args.model:
        corpus = load_corpus(args.corpus or DEFAULT_SPEC, CorpusOptions())
        tokens = held_out_sequences(corpus.val, args.steps, args.sequences, args.seed)
        for family in args.model:
            reason = not_measured(family)
            if reason:
                notes.append(reason)
                continue
            torch.manual_seed(args.seed)
            model = build_model(family, len(corpus.vocab), args.embedding_dim, args.hidden_dim, args.layers, 0.0)
            profiles.append(profile(model.double(), tokens, "init"))
    if args.out is None:  # beside what it measured, never the working directory by surprise
        args.out = (checkpoints[0].parent / "gradflow.png" if checkpoints
                    else Path("results") / "gradflow" / f"gradflow-{'-'.join(args.model)}.png")
    if profiles:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        fig_gradflow(profiles, args.out)
    if args.json:
        print(dumps({"profiles": [p.to_dict() for p in profiles], "notes": notes,
                              "figure": str(args.out) if profiles else None}))
        return 0
    print(f"{'family':>13} {'model':>8} {'|dJ/dh_1| / |dJ/dh_T|':>22} {'decay per step':>15}   (T = {args.steps}, "
          f"{args.sequences} held-out sequences)")
    for p in profiles:
        print(f"{p.family:>13} {p.label:>8} {p.ratio:>22.3g} {p.decay_per_step:>15.4f}")
    for note in notes:
        print(f"note: {note}")
    if profiles:
        print(f"figure: {args.out}")
    return 0


def cmd_embeddings(args: argparse.Namespace) -> int:
    from harness.diagnostics import char_label, default_queries, embedding_matrix, neighbours, project
    from harness.report import fig_embeddings
    from harness.training import load_checkpoint

    path = checkpoint_path(args.checkpoint, args)
    ckpt = load_checkpoint(path, "cpu")
    if args.out is None:
        args.out = path.parent / "embeddings.png"
    chars = list(ckpt.vocab.chars)
    vectors = embedding_matrix(ckpt.model)
    proj = project(vectors, chars)
    queries = list(args.chars) if args.chars else default_queries(chars)
    found = neighbours(vectors, chars, queries, args.neighbours)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig_embeddings(proj, args.out)
    if args.json:
        print(dumps({"explained_variance": list(proj.explained), "figure": str(args.out),
                              "points": [{"char": c, "label": char_label(c), "x": float(x), "y": float(y)}
                                         for c, (x, y) in zip(chars, proj.xy.tolist(), strict=True)],
                              "neighbours": {q: [{"char": c, "cosine": s} for c, s in v] for q, v in found.items()}}))
        return 0
    print(f"{len(chars)} characters, {vectors.shape[1]}-dimensional; the two PCA axes hold "
          f"{proj.explained[0]:.1%} + {proj.explained[1]:.1%} of the variance; figure: {args.out}")
    for q, near in found.items():
        print(f"  {char_label(q):>5}: " + "  ".join(f"{char_label(c)} {s:+.2f}" for c, s in near))
    missing = [q for q in queries if q not in found]
    if missing:
        print(f"not in this checkpoint's vocabulary: {' '.join(char_label(q) for q in missing)}")
    return 0
