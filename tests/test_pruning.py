"""ASHA and Hyperband from a study file: where their rungs are, what they stop, and what status says of it."""

from __future__ import annotations

import optuna
import pytest
from optuna.trial import TrialState
from sweep_helpers import write_study

import harness
from harness.common import HarnessError
from harness.search import load_study, make_pruner, parse_study, pruning_summary, status_summary
from harness.search._pruning import rung_evaluations


def spec_with(pruner: str = "asha", evals: int = 9, spacing: str = "even", **rungs):
    table = "".join(f"{k} = {v}\n" for k, v in rungs.items())
    return parse_study({"study": {"name": "p", "pruner": pruner},
                        "budget": {"per_trial": "10k", "evals": evals, "eval_spacing": spacing},
                        **({"pruner": dict(rungs)} if table else {})})


def test_asha_rungs_are_shares_of_the_budget_at_either_spacing():
    assert rung_evaluations(spec_with(evals=9)) == [(1, 1 / 9), (3, 3 / 9), (9, 1.0)]
    assert [e for e, _ in rung_evaluations(spec_with(evals=9, min_resource=2, reduction_factor=2))] == [2, 4, 8]
    # geometric spacing reports thousandths of the budget: rungs at 1%, 3%, 9%, 27%, 81% of it
    geometric = rung_evaluations(spec_with(evals=10, spacing="geometric"))
    assert [e for e, _ in geometric] == [1, 4, 6, 8, 10]
    assert all(share >= 0.01 * 3 ** k for k, (_, share) in enumerate(geometric))


def _report(study: optuna.Study, values: list[float]) -> optuna.Trial:
    trial = study.ask()
    for step, value in enumerate(values, start=1):
        trial.report(value, step)
        if trial.should_prune():
            study.tell(trial, state=TrialState.PRUNED)
            return trial
    study.tell(trial, values[-1])
    return trial


def test_asha_stops_a_trial_below_its_rungs_quantile_and_keeps_one_above_it():
    spec = spec_with(evals=9)
    study = optuna.create_study(pruner=make_pruner(spec))
    assert isinstance(study.pruner, optuna.pruners.SuccessiveHalvingPruner)
    for first in (1.0, 2.0, 3.0, 4.0, 5.0):  # five trials that ran to the end, judged at rungs 1, 3, 9
        _report(study, [first] * 9)
    worse = _report(study, [3.5] * 9)  # 4th of 6 at evaluation 1: only the best 1 in 3 go on
    better = _report(study, [1.5] * 9)  # 2nd of 7 at evaluation 1: kept
    trials = study.get_trials()
    assert trials[worse.number].state == TrialState.PRUNED and trials[worse.number].last_step == 1
    assert trials[better.number].last_step >= 3  # passed rung 0; judged again at evaluation 3



def test_bootstrap_count_stops_the_first_trials_a_rung_sees_as_the_readme_says():
    study = optuna.create_study(pruner=make_pruner(spec_with(evals=6, bootstrap_count=1)))  # rungs at 1 and 3
    first = _report(study, [1.5] * 6)  # the first at evaluation 1: stopped there, whatever its figure
    second = _report(study, [1.0] * 6)  # the best of 2 at evaluation 1, then the first to reach evaluation 3
    third = _report(study, [0.8] * 6)  # the best of 3 at evaluation 1 and of 2 at evaluation 3: on to the end
    trials = study.get_trials()
    assert [trials[t.number].last_step for t in (first, second, third)] == [1, 3, 6]
    assert [trials[t.number].state for t in (first, second, third)] == [TrialState.PRUNED] * 2 + [TrialState.COMPLETE]


def test_bootstrap_at_the_first_rung_only_lets_a_trial_already_compared_run_past_a_new_rung():
    spec = spec_with(evals=6, bootstrap_count=1, bootstrap_at="first_rung")  # rungs at 1 and 3
    study = optuna.create_study(pruner=make_pruner(spec))
    first = _report(study, [1.5] * 6)  # the first at evaluation 1: stopped there, as with Optuna's bootstrap
    second = _report(study, [1.0] * 6)  # the best of 2 at evaluation 1, and the first at evaluation 3: goes on
    worse = _report(study, [1.2] * 3)  # 2nd of 3 at evaluation 1: stopped there (only the best 1 in 3 go on)
    slow = _report(study, [0.9, 1.1, 1.1, 1.0, 1.0, 1.0])  # best at evaluation 1, behind `second` at 3: stopped
    trials = study.get_trials()
    assert [trials[t.number].last_step for t in (first, second, worse, slow)] == [1, 6, 1, 3]
    assert [trials[t.number].state for t in (first, second, worse, slow)] == [
        TrialState.PRUNED, TrialState.COMPLETE, TrialState.PRUNED, TrialState.PRUNED]
    summary = pruning_summary_of(study, spec)
    assert "its first rung stops the first 1 to reach it" in summary.sentence()
    assert [r.judged for r in summary.rungs] == [4, 2]  # (what each stopped needs the runner's reason)
    with pytest.raises(HarnessError, match=r"\[pruner\] bootstrap_at: .*is for pruner = \"asha\""):
        spec_with(pruner="hyperband", bootstrap_at="first_rung")
    with pytest.raises(HarnessError, match=r"\[pruner\] bootstrap_at: 'first' is not one of every_rung, first_rung"):
        spec_with(bootstrap_at="first")


def test_startup_draws_stop_at_the_first_rung_and_tpe_proposals_are_judged_as_usual():
    spec = parse_study({"study": {"name": "p", "pruner": "asha", "startup_trials": 2},
                        "budget": {"per_trial": "10k", "evals": 6},
                        "pruner": {"startup_to_first_rung": True}})  # rungs at evaluations 1 and 3
    study = optuna.create_study(pruner=make_pruner(spec))
    draws = [_report(study, [1.0] * 6), _report(study, [0.5] * 6)]  # the best at every rung, but start-up draws
    proposal = _report(study, [0.4] * 6)  # the third trial: two had finished as it started
    behind = _report(study, [0.9] * 6)  # 3rd of 4 at evaluation 1: the rung stops it, as without the key
    trials = study.get_trials()
    assert [trials[t.number].last_step for t in (*draws, proposal, behind)] == [1, 1, 6, 1]
    assert trials[proposal.number].state == TrialState.COMPLETE
    plain = optuna.create_study(pruner=make_pruner(parse_study({"study": {"name": "p", "pruner": "asha"},
                                                                "budget": {"per_trial": "10k", "evals": 6}})))
    assert [_report(plain, [v] * 6).number for v in (1.0, 0.5)] == [0, 1]
    assert [t.state for t in plain.get_trials()] == [TrialState.COMPLETE] * 2  # without it both run to the end
    with pytest.raises(HarnessError, match=r"\[pruner\] startup_to_first_rung: .*sampler = \"random\" has no start-up"):
        parse_study({"study": {"name": "p", "pruner": "asha", "sampler": "random"},
                     "pruner": {"startup_to_first_rung": True}})


def pruning_summary_of(study: optuna.Study, spec) -> object:
    from harness.search import SPEC_ATTR
    study.set_user_attr(SPEC_ATTR, spec.to_record())
    return pruning_summary(study)


def test_a_pruner_table_is_read_only_where_it_acts_and_kept_through_the_stored_record():
    spec = spec_with(pruner="hyperband", min_resource=2, reduction_factor=2, bootstrap_count=1)
    pruner = make_pruner(spec)
    assert isinstance(pruner, optuna.pruners.HyperbandPruner)
    again = type(spec).from_record(spec.to_record())
    assert (again.pruner_min_resource, again.pruner_reduction_factor, again.pruner_bootstrap_count) == (2, 2, 1)
    with pytest.raises(HarnessError, match=r"\[pruner\] min_resource: .* 1 to evals \(9\); got 12"):
        spec_with(min_resource=12)


def test_an_asha_sweep_prunes_at_its_rungs_says_so_in_status_and_resumes(tmp_path, small_text_file, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = write_study(tmp_path / "asha.toml", small_text_file, name="asha", trials=7, budget="12k", evals=3,
                       sampler="random", pruner="asha")
    path.write_text(path.read_text() + "\n[pruner]\nmin_resource = 1\nreduction_factor = 3\n")
    spec = load_study(path)
    spec.generate.enabled = False
    study = harness.load_results(harness.run_sweep(spec, tmp_path / "r", device="cpu"))
    trials = study.get_trials()
    pruned = [t for t in trials if t.state == TrialState.PRUNED]
    assert pruned, [(t.number, t.state.name, t.intermediate_values) for t in trials]  # 7 trials, keep 1 in 3
    for t in pruned:
        assert t.user_attrs["reason"] in ("pruned by asha at evaluation 1", "pruned by asha at evaluation 3")
    summary = pruning_summary(study)
    assert summary.stopped == len(pruned) and summary.rungs[0].judged == len(trials)
    assert sum(r.stopped for r in summary.rungs) == len(pruned)
    line = status_summary(study)["pruning"]["sentence"]
    assert line.startswith(f"pruner: asha (first rung at evaluation 1, keeps 1 in 3) stopped {len(pruned)} trials")
    # the same file resumes; another reduction factor is another study and is refused, naming the key
    assert harness.run_sweep(spec, tmp_path / "r", device="cpu", trials=7).stop == "planned"
    path.write_text(path.read_text().replace("reduction_factor = 3", "reduction_factor = 2"))
    changed = load_study(path)
    changed.generate.enabled = False
    with pytest.raises(HarnessError, match=r"\[pruner\] reduction_factor: 3 -> 2"):
        harness.run_sweep(changed, tmp_path / "r", device="cpu", trials=8)


def test_the_sweep_benchmark_takes_the_new_pruner_keys_and_refuses_what_a_study_file_would(small_text_file):
    """scripts/bench_sweep.py: a variant named on its command line is checked as the study file checks it."""
    import argparse
    import importlib.util
    from pathlib import Path
    path = Path(__file__).resolve().parents[1] / "scripts" / "bench_sweep.py"
    spec = importlib.util.spec_from_file_location("bench_sweep", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert bench._pruner_setting("bootstrap_at=first_rung") == ("bootstrap_at", "first_rung")
    assert bench._pruner_setting("startup_to_first_rung=true") == ("startup_to_first_rung", True)
    assert bench._pruner_setting("min_resource=2") == ("min_resource", 2)
    for bad in ("bootstrap_at=first", "startup_to_first_rung=1", "min_resource=two", "patience=2"):
        with pytest.raises(argparse.ArgumentTypeError, match="expected KEY=N"):
            bench._pruner_setting(bad)
    args = argparse.Namespace(study=path.parents[1] / "studies" / "prince-overnight.toml", trials=4,
                              corpus=str(small_text_file), device="cpu", per_trial="10k", evals=6,
                              keep_schedule=False, pruner_setting=[("bootstrap_at", "first_rung")], startup=None,
                              good_fraction=None)
    assert bench.sweep_spec(args, "asha", 0).pruner_bootstrap_at == "first_rung"
    with pytest.raises(HarnessError, match=r"bootstrap_at: .*is for pruner = \"asha\""):
        bench.sweep_spec(args, "hyperband", 0)
