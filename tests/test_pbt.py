"""Population-based training: the [pbt] table, the exact copy of a parent's weights and optimizer state, the
lineage's cost, resume after SIGKILL, the replayed schedule."""

from __future__ import annotations

import json
import math

import pytest
import torch
from optuna.trial import TrialState
from sweep_helpers import harness_cli, load, sweep_proc, wait_for

import harness
from harness.cli import main
from harness.common import HarnessError
from harness.data import CorpusOptions, load_corpus
from harness.report import build_report, study_frame
from harness.search import SweepOptions, load_study, run_worker
from harness.search._pbt import Segment, lineage, schedule_of
from harness.training import Budget, Evaluations, Start, TrainConfig, Trainer, load_checkpoint

HOOK_OUT = "PBT_HOOK_OUT"


def write_pbt(path, corpus, *, population: int = 4, interval: float = 0.5, budget: str = "24k", extra: str = "",
              name: str = "pbt") -> object:
    """A PBT study of gru members; `extra` lines join [pbt] (one that sets population or interval replaces it)."""
    lines = {"population": f"population = {population}", "interval": f"interval = {interval}"}
    for line in filter(None, extra.splitlines()):
        lines[line.split("=")[0].strip()] = line
    table = "\n".join(lines.values())
    path.write_text(f"""
[study]
name = "{name}"
corpus = "{corpus}"
sampler = "pbt"
seed = 1
device = "cpu"

[budget]
per_trial = "{budget}"

[pbt]
{table}

[fixed]
model = "gru"
seq_len = 32
batch_size = 16

[space.hidden_dim]
type = "int"
low = 16
high = 40
log = true

[space.layers]
type = "int"
low = 1
high = 2

[space.dropout]
type = "float"
low = 0.0
high = 0.3

[space.lr]
type = "float"
low = 2e-3
high = 1e-2
log = true

[generate]
enabled = false
""")
    return path


@pytest.mark.parametrize(("change", "where"), [
    ("population = 1", "[pbt] population"),
    ('interval = "30s"', "[pbt] interval"),
    ("interval = 0", "[pbt] interval"),
    ("quantile = 0.7", "[pbt] quantile"),
    ('perturb = ["hidden_dim"]', "[pbt] perturb"),
    ('perturb = ["weight_decay"]', "[pbt] perturb"),
    ("factors = [1.2, -1]", "[pbt] factors"),
    ("resample_probability = 2", "[pbt] resample_probability"),
    ("exploit = 1", "[pbt] exploit"),
])
def test_a_bad_pbt_table_is_refused_naming_the_key(tmp_path, small_text_file, change, where):
    study = write_pbt(tmp_path / "p.toml", small_text_file, extra=change)
    with pytest.raises(HarnessError, match=rf"p\.toml: {__import__('re').escape(where)}"):
        load_study(study)


def test_pbt_decides_trials_pruner_and_evals_and_refuses_a_file_that_says_otherwise(tmp_path, small_text_file):
    spec = load_study(write_pbt(tmp_path / "p.toml", small_text_file, population=3, interval=0.3))
    assert (spec.pbt.generations, spec.trials, spec.pruner, spec.evals) == (4, 12, "none", 1)
    assert spec.pbt.perturb == ["dropout", "lr"]
    text = (tmp_path / "p.toml").read_text()
    for edit, where in (('sampler = "pbt"\npruner = "hyperband"', "[study] pruner"),
                        ('sampler = "pbt"\ntrials = 5', "[study] trials"),
                        ('per_trial = "24k"\nevals = 4', "[budget] evals")):
        bad = tmp_path / "bad.toml"
        bad.write_text(text.replace(edit.split("\n")[0], edit))
        with pytest.raises(HarnessError, match=rf"bad\.toml: {__import__('re').escape(where)}"):
            load_study(bad)
    tpe = tmp_path / "tpe.toml"
    tpe.write_text(text.replace('sampler = "pbt"', 'sampler = "tpe"'))
    with pytest.raises(HarnessError, match=r"\[pbt\] population: sampler = \"tpe\" does not read \[pbt\]"):
        load_study(tpe)
    run = harness_cli("sweep", bad, "--results", tmp_path / "r")
    assert run.returncode != 0 and "Traceback" not in run.stderr and "[budget] evals" in run.stderr
    # the stored record is the same study again (what a worker process and a resume read)
    assert type(spec).from_record(spec.to_record()).to_record() == spec.to_record()


def _trainer(corpus, config, out_dir, start=None, budget="6k"):
    return Trainer(config, corpus, Budget.parse(budget), torch.device("cpu"), out_dir=out_dir, evaluations=Evaluations(1),
                   start=start, warmup=True)


def test_a_continued_run_starts_from_the_parents_exact_weights_and_optimizer_state(tmp_path, small_text_file):
    corpus = load_corpus(str(small_text_file), CorpusOptions())
    parent_config = TrainConfig(model="lstm", embedding_dim=16, hidden_dim=24, layers=2, seq_len=32, batch_size=8,
                                lr=4e-3, dropout=0.1, lr_schedule="wsd")
    _trainer(corpus, parent_config, tmp_path / "parent", Start(window=(0.0, 0.5), keep_optimizer=True)).run()
    saved = torch.load(tmp_path / "parent" / "best.pt", weights_only=True)
    assert saved["optimizer"]["state"], "the segment's end keeps Adam's moments"

    child_config = TrainConfig(**{**parent_config.to_dict(), "lr": 2e-3, "dropout": 0.25, "seed": 7})
    child = _trainer(corpus, child_config, tmp_path / "child",
                     Start(checkpoint=str(tmp_path / "parent" / "best.pt"), window=(0.5, 1.0), keep_optimizer=True))
    child.warm_up()  # the untimed warm-up steps must leave the copy as it was
    for key, value in child.model.state_dict().items():
        assert torch.equal(value, saved["state_dict"][key]), key
    state = child.optimizer.state_dict()
    for index, moments in saved["optimizer"]["state"].items():
        for name, value in moments.items():
            assert torch.equal(torch.as_tensor(state["state"][index][name]), torch.as_tensor(value)), (index, name)
    assert [g["lr"] for g in state["param_groups"]] == [2e-3]  # the child's own (perturbed) rate, not the parent's
    assert child.model.rnn.dropout == 0.25
    child.set_lr()  # the decay continues where the member is: wsd holds the peak until 80% of its budget
    assert child.current_lr == pytest.approx(2e-3)
    child.start.window, child.current_lr = (0.9, 1.0), None
    child.set_lr()
    assert child.current_lr == pytest.approx(2e-3 * child_config.lr_factor(0.9))


def record_start(number: int, trainer) -> None:
    """A trial hook: what each segment's model and optimizer hold before it trains, against the checkpoint it
    says it continues."""
    import os
    path = trainer.start.checkpoint
    same = None
    if path is not None:
        ckpt = load_checkpoint(path)
        same = all(torch.equal(v, ckpt.model.state_dict()[k]) for k, v in trainer.model.state_dict().items())
        steps = [float(s["step"]) for s in trainer.optimizer.state_dict()["state"].values()]
        same = same and steps == [float(s["step"]) for s in ckpt.optimizer_state["state"].values()]
    with open(os.environ[HOOK_OUT], "a") as f:
        f.write(json.dumps({"trial": number, "checkpoint": path, "same": same}) + "\n")


def test_a_pbt_study_exploits_explores_and_charges_each_model_its_lineage(tmp_path, small_text_file, monkeypatch):
    out = tmp_path / "hook.jsonl"
    monkeypatch.setenv("HARNESS_TRIAL_HOOK", "test_pbt:record_start")
    monkeypatch.setenv(HOOK_OUT, str(out))
    spec = load_study(write_pbt(tmp_path / "p.toml", small_text_file, population=4, interval=0.5))
    outcome = run_worker(spec, SweepOptions(results_dir=tmp_path / "res", plain_progress=True))
    assert outcome.stop == "planned"
    monkeypatch.delenv("HARNESS_TRIAL_HOOK")  # the commands below run in processes of their own
    study = load(tmp_path / "res", "pbt")
    trials = study.get_trials()
    assert len(trials) == 8 and all(t.state == TrialState.COMPLETE for t in trials)
    first = {Segment.of(t).member: t for t in trials if Segment.of(t).generation == 0}
    second = [t for t in trials if Segment.of(t).generation == 1]
    exploited = [t for t in second if Segment.of(t).exploited]
    assert len(exploited) == 1  # ceil(4 x 0.25) = 1: the worst member copies the best
    ranked = sorted(first.values(), key=lambda t: t.values[0])
    child = exploited[0]
    seg = Segment.of(child)
    assert seg.parent == ranked[0].number and first[seg.member] is ranked[-1]
    assert seg.checkpoint == ranked[0].user_attrs["checkpoint"]
    for key in ("hidden_dim", "layers"):  # shapes come with the weights
        assert child.params[key] == ranked[0].params[key]
    assert child.params["lr"] != ranked[0].params["lr"]  # explored: x1.2, x0.8 or drawn again
    starts = [json.loads(line) for line in out.read_text().splitlines()]
    assert [s["same"] for s in starts if s["checkpoint"]] == [True] * 4  # each began from its parent, exactly

    for t in second:  # the model is charged every segment its weights passed through
        parent = study.trials[Segment.of(t).parent]
        assert t.user_attrs["device_seconds"] == pytest.approx(parent.user_attrs["device_seconds"] +
                                                               t.user_attrs["segment_device_seconds"])
        assert t.user_attrs["train_chars"] == parent.user_attrs["train_chars"] + t.user_attrs["segment_train_chars"]
        assert t.user_attrs["curve"][-1]["device_seconds"] == pytest.approx(t.user_attrs["device_seconds"], rel=1e-6)
        assert [x.number for x, _ in lineage(study, t.number)] == [parent.number, t.number]
    frame = study_frame(study)  # the sweep, though, spent each segment once
    own = sum(t.user_attrs["segment_device_seconds"] for t in trials)
    assert frame["sweep_device_seconds"].max() == pytest.approx(own)
    assert frame["device_seconds"].sum() > own * 1.2

    status = harness_cli("status", tmp_path / "res")
    assert status.returncode == 0 and "pbt: 4 members, 2 generation(s), 8 segments, 1 exploit(s)" in status.stdout
    report = build_report(study, tmp_path / "report")
    page = (report.out_dir / "report.md").read_text()
    assert "Population-based training" in page and (report.out_dir / "pbt.png").exists()

    best = min(second, key=lambda t: t.values[0])
    phases = schedule_of(study, best.number, spec.pbt.perturb)
    assert phases[0][0] == 0.0 and set(phases[0][1]) <= {"lr", "dropout"}
    replay = harness_cli("train", "--schedule-from", tmp_path / "res", "--trial", best.number, "--seed", "5",
                         "--out", tmp_path / "replay", "--corpus", small_text_file)
    assert replay.returncode == 0, replay.stderr[-2000:]
    result = json.loads((tmp_path / "replay" / "result.json").read_text())
    assert result["config"]["seed"] == 5 and result["train_chars"] >= 24_000
    assert result["config"]["hidden_dim"] == best.params["hidden_dim"]
    assert [p[0] for p in result["schedule"]] == [p[0] for p in phases]
    again = harness.replay(tmp_path / "res", best.number, seed=5, device="cpu", evals=1)  # the same, from Python
    assert again.train_chars == result["train_chars"] and again.config["hidden_dim"] == best.params["hidden_dim"]

    confirm = harness_cli("confirm", tmp_path / "res", "--top", "1", "--seeds", "1")
    assert confirm.returncode == 0, confirm.stderr[-2000:]
    run = load(tmp_path / "res", "pbt/confirm").get_trials()
    assert len(run) == 1 and run[0].state == TrialState.COMPLETE
    assert run[0].user_attrs["schedule"] == [[share, rates] for share, rates in phases]  # replayed, from scratch
    assert run[0].params == lineage(study, best.number)[0][0].params and "pbt" not in run[0].user_attrs
    assert run[0].user_attrs["train_chars"] >= 24_000 and math.isfinite(run[0].user_attrs["test_bpc"])


def test_a_killed_segment_is_retried_from_its_own_start(tmp_path, small_text_file):
    study_file = write_pbt(tmp_path / "p.toml", small_text_file, population=2, interval=0.5, budget="150k")
    results = tmp_path / "res"
    proc = sweep_proc(study_file, results)

    def running_second_generation():
        try:
            trials = load(results, "pbt").get_trials()
        except (KeyError, FileNotFoundError):  # the sweep has not created its study yet
            return None
        return next((t for t in trials if t.state == TrialState.RUNNING and Segment.of(t) and
                     Segment.of(t).generation == 1 and t.params), None)  # drawn, so training
    victim = wait_for(running_second_generation, timeout=300)
    proc.kill()
    proc.wait(timeout=30)
    assert main(["sweep", str(study_file), "--results", str(results)]) == 0
    after = load(results, "pbt").get_trials()
    dead = after[victim.number]  # the killed segment as stored, parameters included
    assert dead.state == TrialState.FAIL
    retry = [t for t in after if t.system_attrs.get("failed_trial") == victim.number]
    assert len(retry) == 1 and retry[0].state == TrialState.COMPLETE
    assert Segment.of(retry[0]) == Segment.of(dead) and retry[0].params == dead.params
    done = [t for t in after if t.state == TrialState.COMPLETE]
    assert len(done) == 4 and sorted((Segment.of(t).member, Segment.of(t).generation) for t in done) == \
        [(0, 0), (0, 1), (1, 0), (1, 1)]
    assert all(math.isfinite(t.values[0]) for t in done)


def hide_first_checkpoint(number: int, trainer) -> None:
    """A trial hook: as trial 1 (the last of generation 0) starts, trial 0's checkpoint goes where another
    machine would have it: not here; and trial 1 learns nothing, so generation 1 continues trial 0."""
    if number == 1:
        best = trainer.out_dir.parent / "0000" / "best.pt"
        best.rename(best.with_suffix(".elsewhere"))
        trainer.peak_lr = 0.0
        for group in trainer.optimizer.param_groups:
            group["lr"] = 0.0


def test_a_segment_whose_parent_checkpoint_is_not_here_stops_the_worker_with_a_clear_line(
        tmp_path, small_text_file, monkeypatch):
    spec = load_study(write_pbt(tmp_path / "p.toml", small_text_file, population=2, interval=0.5, budget="12k"))
    options = SweepOptions(results_dir=tmp_path / "res", plain_progress=True)
    monkeypatch.setenv("HARNESS_TRIAL_HOOK", "test_pbt:hide_first_checkpoint")
    with pytest.raises(HarnessError, match=r"whose checkpoint .*0000/best\.pt this machine cannot read; a PBT study "
                                           r"on several machines needs its results directory on a filesystem"):
        run_worker(spec, options)
    trials = load(tmp_path / "res", "pbt").get_trials()
    stopped = [t for t in trials if t.state == TrialState.FAIL]
    assert len(stopped) == 1 and "not on this machine" in stopped[0].user_attrs["reason"]
    assert any(t.state == TrialState.WAITING and t.user_attrs.get("retry_of") == stopped[0].number for t in trials)
    monkeypatch.delenv("HARNESS_TRIAL_HOOK")
    hidden = tmp_path / "res" / "trials" / "0000" / "best.elsewhere"
    hidden.rename(hidden.with_suffix(".pt"))  # the filesystem is shared now: the same command resumes
    assert run_worker(spec, options).stop == "planned"
    assert sum(t.state == TrialState.COMPLETE for t in load(tmp_path / "res", "pbt").get_trials()) == 4
