"""The sweep as a user runs it overnight: real tiny studies, real processes, real signals."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest
from faults import fault_env
from optuna.trial import TrialState
from sweep_helpers import harness_cli, has_heartbeat, load, sweep_proc, wait_for, write_study

from harness.cli import main


def test_tiny_study_completes_and_records_everything(tmp_path, small_text_file, capsys):
    study_file = write_study(tmp_path / "tiny.toml", small_text_file, trials=4)
    results = tmp_path / "res"
    assert main(["sweep", str(study_file), "--results", str(results)]) == 0
    study = load(results)
    trials = study.get_trials()
    assert len(trials) == 4
    assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert complete
    t = complete[0]
    a = t.user_attrs
    assert set(t.params) == {"hidden_dim", "lr"}
    assert a["config"]["model"] == "gru" and a["config"]["hidden_dim"] == t.params["hidden_dim"]
    assert sorted(t.intermediate_values) == [1, 2, 3]  # held-out bpc at each evaluation
    assert [p["bpc"] for p in a["curve"]] == [t.intermediate_values[i] for i in (1, 2, 3)]
    assert a["curve"][-1]["device_seconds"] > a["curve"][0]["device_seconds"]
    assert t.values[0] == pytest.approx(a["val_bpc"]) == pytest.approx(min(t.intermediate_values.values()))
    for key in ("final_val_bpc", "val_ppl", "final_val_ppl", "train_chars_per_s", "device_seconds", "wall_seconds",
                "peak_mem_bytes", "fingerprint", "checkpoint"):
        assert key in a, key
    assert a["fingerprint"]["torch"] and a["fingerprint"]["host"]
    # telemetry: CPU figures on this machine, phases split, samples saved beside the trial
    assert a["telemetry_source"] == "cpu" and a["util_source"] == "cpu_util" and a["util_mean"] > 0
    assert a["energy_j"] is None and a["peak_mem_bytes"] > 0
    assert a["phases"]["training"]["seconds"] == pytest.approx(a["train_seconds"], rel=0.05, abs=0.02)
    assert a["phases"]["generation"]["windows"] == 1
    assert Path(a["samples_csv"]).exists() and a["mfu"] > 0
    assert Path(a["checkpoint"]).exists() and (Path(a["trial_dir"]) / "result.json").exists()
    gen = a["generation"]["temperatures"]
    assert [g["temperature"] for g in gen] == [0.0, 1.0]
    assert len(gen[1]["samples"]) == 2 and "self_bleu" in gen[1]["metrics"]
    out = capsys.readouterr()
    assert "best: trial" in out.out
    assert "4 trials, 20,000 training characters each, on cpu" in out.out + out.err  # words, not "20000tok"

    # status, human and JSON
    assert main(["status", str(results), "--json"]) == 0
    status = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert sum(status["counts"].values()) == 4
    assert status["best"]["bpc"] == pytest.approx(min(t.values[0] for t in complete))
    assert {t["state"] for t in status["trials"]} <= {"COMPLETE", "PRUNED"}
    assert main(["status", str(study_file), "--results", str(results)]) == 0
    assert "best: trial" in capsys.readouterr().out

    # running again with a larger plan resumes: old trials kept, only the new ones run
    assert main(["sweep", str(study_file), "--results", str(results), "--trials", "6"]) == 0
    again = load(results).get_trials()
    assert len(again) == 6
    assert [t.params for t in again[:4]] == [t.params for t in trials]


def test_injected_oom_nan_and_error_are_recorded_and_the_sweep_goes_on(tmp_path, small_text_file):
    study_file = write_study(tmp_path / "tiny.toml", small_text_file, trials=5, pruner="none")
    results = tmp_path / "res"
    env = fault_env("oom@1,nan@2,error@3")
    proc = harness_cli("sweep", study_file, "--results", results, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    trials = load(results).get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.PRUNED, TrialState.PRUNED,
                                         TrialState.FAIL, TrialState.COMPLETE]
    oom, nan, err = trials[1], trials[2], trials[3]
    assert oom.user_attrs["reason"].startswith("out of memory")
    assert oom.constraints == {"fits_in_memory": 1.0}  # TPE treats it as infeasible, not as unknown
    assert nan.user_attrs["reason"].startswith("diverged") and "nan" in nan.user_attrs["reason"]
    assert nan.constraints == {"finite_loss": 1.0}
    assert err.user_attrs["reason"].startswith("RuntimeError: injected failure")
    assert "Traceback" in err.user_attrs["traceback"]
    assert "trial 1 PRUNED: out of memory" in proc.stderr


def test_too_many_consecutive_failures_stop_with_a_message(tmp_path, small_text_file):
    study_file = write_study(tmp_path / "tiny.toml", small_text_file, trials=6,
                             extra="max_consecutive_failures = 2")
    env = fault_env("error@0,error@1")
    proc = harness_cli("sweep", study_file, "--results", tmp_path / "r", timeout=300, env=env)
    assert proc.returncode == 3
    assert "2 trials failed in a row" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(load(tmp_path / "r").get_trials()) == 2


def _first_running_with_heartbeat(results):
    def check():
        try:
            study = load(results)
        except Exception:
            return None
        running = [t for t in study.get_trials() if t.state == TrialState.RUNNING and has_heartbeat(results, t)
                   and t.params]  # (a worker beats from the moment it asks, before it has sampled)
        done = [t for t in study.get_trials() if t.state.is_finished()]
        return running[0] if running and done else None

    return check


def test_ctrl_c_marks_the_trial_and_the_next_run_resumes(tmp_path, small_text_file):
    study_file = write_study(tmp_path / "tiny.toml", small_text_file, trials=3, budget="150k", pruner="none")
    results = tmp_path / "res"
    proc = sweep_proc(study_file, results)
    victim = wait_for(_first_running_with_heartbeat(results))
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, out
    assert "Run the same command to resume" in out and "Traceback" not in out
    trials = load(results).get_trials()
    interrupted = trials[victim.number]
    assert interrupted.state == TrialState.FAIL and interrupted.user_attrs["reason"].startswith("interrupted")
    waiting = [t for t in trials if t.state == TrialState.WAITING]
    assert len(waiting) == 1 and waiting[0].params == interrupted.params
    finished_before = {t.number: t.values for t in trials if t.state == TrialState.COMPLETE}

    assert main(["sweep", str(study_file), "--results", str(results)]) == 0
    after = load(results).get_trials()
    assert {t.number: t.values for t in after if t.number in finished_before} == finished_before
    retry = [t for t in after if t.system_attrs.get("failed_trial") == victim.number]
    assert len(retry) == 1 and retry[0].state == TrialState.COMPLETE and retry[0].params == interrupted.params
    assert sum(t.state == TrialState.COMPLETE for t in after) == 3


def test_sigkill_mid_trial_is_failed_and_retried_once(tmp_path, small_text_file):
    study_file = write_study(tmp_path / "tiny.toml", small_text_file, trials=3, budget="150k", pruner="none")
    results = tmp_path / "res"
    proc = sweep_proc(study_file, results)
    victim = wait_for(_first_running_with_heartbeat(results))
    proc.kill()
    proc.wait(timeout=30)
    finished_before = {t.number: t.values for t in load(results).get_trials() if t.state == TrialState.COMPLETE}
    assert load(results).get_trials()[victim.number].state == TrialState.RUNNING  # left behind by the dead worker

    assert main(["sweep", str(study_file), "--results", str(results)]) == 0
    after = load(results).get_trials()
    dead = after[victim.number]
    assert dead.state == TrialState.FAIL
    retries = [t for t in after if t.system_attrs.get("failed_trial") == victim.number]
    assert len(retries) == 1
    assert retries[0].params == dead.params and retries[0].state == TrialState.COMPLETE
    assert {t.number: t.values for t in after if t.number in finished_before} == finished_before
    assert sum(t.state == TrialState.COMPLETE for t in after) == 3


def test_two_workers_on_one_journal_run_each_planned_trial_once(tmp_path, small_text_file):
    study_file = write_study(tmp_path / "tiny.toml", small_text_file, trials=6, pruner="none")
    results = tmp_path / "res"
    proc = harness_cli("sweep", study_file, "--results", results, "--workers", "2", timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    trials = load(results).get_trials()
    assert len(trials) == 6
    assert all(t.state == TrialState.COMPLETE for t in trials)
    assert len({t.user_attrs["fingerprint"]["pid"] for t in trials}) == 2  # both workers took trials
    assert "[worker 0]" in proc.stderr and "[worker 1]" in proc.stderr


def test_grid_study_runs_every_family_once(tmp_path, small_text_file):
    study_file = tmp_path / "grid.toml"
    study_file.write_text(f"""
[study]
name = "grid"
corpus = "{small_text_file}"
sampler = "grid"
pruner = "none"
device = "cpu"

[budget]
per_trial = "8k"
evals = 1

[fixed]
embedding_dim = 16
hidden_dim = 24
layers = 2
seq_len = 16
batch_size = 8

[space.model]
type = "categorical"
choices = ["mlp", "rnn", "residual_rnn", "gru", "lstm"]

[generate]
enabled = false
""")
    results = tmp_path / "res"
    assert main(["sweep", str(study_file), "--results", str(results)]) == 0
    trials = load(results, "grid").get_trials()
    assert sorted(t.params["model"] for t in trials) == ["gru", "lstm", "mlp", "residual_rnn", "rnn"]
    assert all(t.state == TrialState.COMPLETE for t in trials)
    assert "generation" not in trials[0].user_attrs

    # the report of a study that sampled the family compares the families
    assert main(["report", str(results), "--format", "png"]) == 0
    report = results / "report"
    md = (report / "report.md").read_text()
    section = md.split("## Architectures at equal device-seconds")[1].split("## Details")[0]
    sentences = [line for line in section.splitlines() if line.startswith("- ")]
    answer, *per_family = sentences  # first, which family wins within each budget; then one line per family
    assert answer.startswith("- Which family, for the device-seconds you can spend:")
    assert sorted(s.split(":")[0][2:] for s in per_family) == ["gru", "lstm", "mlp", "residual_rnn", "rnn"]
    assert "Best held-out bpc within each budget, per family" in section
    assert "no gradient flows in time" in section and "steps back" in section
    for name in ("families", "gradflow", "embeddings"):
        assert (report / f"{name}.png").stat().st_size > 1000, name


def test_pareto_study_records_two_objectives_and_survives_faults(tmp_path, small_text_file):
    study_file = write_study(tmp_path / "mo.toml", small_text_file, trials=4,
                             extra='second_objective = "device_seconds"')
    results = tmp_path / "res"
    env = fault_env("oom@1,nan@2")
    proc = harness_cli("sweep", study_file, "--results", results, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    study = load(results)
    assert len(study.directions) == 2
    trials = study.get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.PRUNED, TrialState.PRUNED,
                                         TrialState.COMPLETE]
    for t in (trials[0], trials[3]):
        assert t.values[1] == pytest.approx(t.user_attrs["device_seconds"])
        assert t.intermediate_values == {}  # Optuna cannot prune multi-objective trials, so none are reported
    assert {t.number for t in study.best_trials} <= {0, 3}
    assert main(["report", str(results), "--format", "png"]) == 0


def test_interrupting_a_multi_worker_sweep_marks_every_running_trial(tmp_path, small_text_file):
    # trials long enough (400k characters) that neither can finish between the check and the signal
    study_file = write_study(tmp_path / "tiny.toml", small_text_file, trials=4, budget="400k", pruner="none")
    results = tmp_path / "res"
    proc = sweep_proc(study_file, results, "--workers", "2")

    def two_running():
        try:
            trials = load(results).get_trials()
        except Exception:
            return False
        return sum(t.state == TrialState.RUNNING and has_heartbeat(results, t) for t in trials) == 2

    wait_for(two_running)
    proc.send_signal(signal.SIGINT)  # to the parent only, as `kill -INT` would
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, out
    trials = load(results).get_trials()
    interrupted = [t for t in trials if t.state == TrialState.FAIL]
    states = [(t.number, t.state.name, t.user_attrs.get("reason")) for t in trials]
    assert len(interrupted) == 2 and all(t.user_attrs["reason"].startswith("interrupted") for t in interrupted), states
    assert sum(t.state == TrialState.WAITING for t in trials) == 2
    assert not any(t.state == TrialState.RUNNING for t in trials)

    assert main(["sweep", str(study_file), "--results", str(results)]) == 0
    after = load(results).get_trials()
    assert sum(t.state == TrialState.COMPLETE for t in after) == 4


def test_a_trial_hook_that_cannot_be_loaded_is_refused_naming_the_variable(monkeypatch):
    from harness.common import HarnessError
    from harness.search._trial import load_trial_hook

    monkeypatch.delenv("HARNESS_TRIAL_HOOK", raising=False)
    assert load_trial_hook() is None  # the production path: no hook at all
    monkeypatch.setenv("HARNESS_TRIAL_HOOK", "no_such_module:inject")
    with pytest.raises(HarnessError, match=r"HARNESS_TRIAL_HOOK='no_such_module:inject': cannot load it"):
        load_trial_hook()
    monkeypatch.setenv("HARNESS_TRIAL_HOOK", "faults:inject")
    import faults

    assert load_trial_hook() is faults.inject
