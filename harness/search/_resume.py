"""What a resumed study may change, and what it may not.

A study's trials compare only if each one means the same thing: the same text and split, the
same per-trial budget and evaluations, the same fixed settings and search space, the same
sampler and pruner. A study file edited between two nights must not quietly mix trials of two
studies, so `check_resume` lists every such difference (old and new value) and the sweep refuses.
Settings that change how long or where the study runs, not what a trial means (`trials`,
`timeout`, `[generate]`, `device`, the sampler's seed, ...), are allowed; the change is recorded in
the study (`harness:spec_changes`) and the stored spec is updated, so the report prints what ran last.
"""

from __future__ import annotations

import time
from typing import Any

SPEC_ATTR = "harness:spec"
CHANGES_ATTR = "harness:spec_changes"
BASELINE_ATTR = "harness:baseline"  # the count model's figures (harness.data._ngram), stored when a sweep opens it

# key in the stored record -> how the user finds it in the study file
MEANING = {
    "corpus_sha256": "[study] corpus (its text)",
    "lowercase": "[study] lowercase",
    "split": "[study] split",
    "max_chars": "[study] max_chars",
    "sampler": "[study] sampler",
    "pruner": "[study] pruner",
    "pruner_min_resource": "[pruner] min_resource",
    "pruner_reduction_factor": "[pruner] reduction_factor",
    "pruner_bootstrap_count": "[pruner] bootstrap_count",
    "pruner_bootstrap_at": "[pruner] bootstrap_at",
    "pruner_startup_to_first_rung": "[pruner] startup_to_first_rung",
    "objective": "[study] objective",
    "second_objective": "[study] second_objective",
    "budget": "[budget] per_trial",
    "evals": "[budget] evals",
    "eval_spacing": "[budget] eval_spacing",
    "patience": "[budget] patience",
    "precision": "[study] precision",
    "pbt": "[pbt]",
}
ALLOWED = {
    "corpus": "[study] corpus", "encoding": "[study] encoding", "trials": "[study] trials",
    "timeout": "[study] timeout", "seed": "[study] seed", "device": "[study] device", "question": "[study] question",
    "max_consecutive_failures": "[study] max_consecutive_failures", "generate": "[generate]",
    "startup_trials": "[study] startup_trials", "good_fraction": "[study] good_fraction",
}


# keys a later release added, with the value every study before it had: an older record means that
ADDED = {"eval_spacing": "even", "patience": 0, "max_chars": None, "pruner_min_resource": 1,
         "pruner_reduction_factor": 3, "pruner_bootstrap_count": 0, "pruner_bootstrap_at": "every_rung",
         "pruner_startup_to_first_rung": False, "pbt": None, "startup_trials": None,
         "good_fraction": None}


def _flat(record: dict) -> dict[str, tuple[str, Any]]:
    """Comparable items: (where the user sees it, value); fixed settings and parameters one by one."""
    items: dict[str, tuple[str, Any]] = {}
    for key, label in MEANING.items():
        if key in record or key in ADDED:
            items[key] = (label, record.get(key, ADDED.get(key)))
    for name, value in (record.get("fixed") or {}).items():
        items[f"fixed.{name}"] = (f"[fixed] {name}", value)
    for family, table in (record.get("family_fixed") or {}).items():
        for name, value in table.items():
            items[f"fixed.{family}.{name}"] = (f"[fixed.{family}] {name}", value)
    for name, param in (record.get("space") or {}).items():
        where = f"[space.{param['family']}.{param['name']}]" if param.get("family") else f"[space.{name}]"
        # fields a later release added are compared only when set, so older studies resume unchanged
        items[f"space.{name}"] = (where, {k: v for k, v in param.items()
                                          if v is not None and not (k == "balanced" and v is False)})
    return items


def _show(value: Any) -> str:
    if value is None:
        return "(not set)"
    if isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value):
        return value[:12] + "…"  # a text fingerprint
    return repr(value)


def check_resume(stored: dict, current: dict) -> tuple[list[str], dict[str, list]]:
    """(refusals, allowed changes): each refusal says 'key: old -> new'; allowed is key -> [old, new]."""
    old, new = _flat(stored), _flat(current)
    refusals = []
    comparable = set(old) | {k for k in new if k.startswith(("fixed.", "space."))}
    for key in sorted(comparable, key=lambda k: (k.count("."), k)):
        if "." not in key and key not in ADDED and (key not in stored or key not in current):
            continue  # recorded by an older harness, or not known yet: nothing to compare with
        before = old.get(key, (new.get(key, ("", None))[0], None))
        after = new.get(key, (before[0], None))
        if before[1] != after[1]:
            refusals.append(f"{before[0] or after[0]}: {_show(before[1])} -> {_show(after[1])}")
    allowed = {label: [stored.get(key), current.get(key)] for key, label in ALLOWED.items()
               if key in stored and stored.get(key) != current.get(key)}
    return refusals, allowed


def changes_entry(allowed: dict[str, list]) -> dict:
    return {"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "changed": allowed}
