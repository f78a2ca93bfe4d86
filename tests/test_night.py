"""What a night can do to a study: torn journals, full disks, edited study files, retries, signals anywhere."""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState
from sweep_helpers import harness_cli, load, sweep_proc, wait_for, write_study

from harness.cli import main
from harness.common import HarnessError, interrupts
from harness.search import (
    CHANGES_ATTR,
    HEARTBEAT_ENV,
    JOURNAL_NAME,
    HeartbeatJournalStorage,
    RetryTrial,
    TrialRunner,
    heartbeat_settings,
    open_storage,
)
from harness.search._journal import torn_tail
from harness.search._optuna import STALE_TRIAL_IDS, study_id, trial_id

NO_GEN = "[generate]\nenabled = false\n"


def _sweep(study_file: Path, results: Path, *extra: str, **kwargs) -> subprocess.CompletedProcess:
    return harness_cli("sweep", study_file, "--results", results, *extra, timeout=300, **kwargs)


def _counted(trials) -> int:
    retried = {n for t in trials for n in t.system_attrs.get("retry_history", [])}
    return sum(not (t.state == TrialState.FAIL and t.number in retried) for t in trials)


def test_torn_journal_is_cut_back_on_resume_and_readers_never_write(tmp_path, small_text_file, capsys):
    study_file = write_study(tmp_path / "tiny.toml", small_text_file, trials=2, budget="10k", pruner="none")
    results = tmp_path / "res"
    first = _sweep(study_file, results)  # another process, as the night before would be
    assert first.returncode == 0, first.stderr[-2000:]
    journal = results / JOURNAL_NAME
    whole = journal.read_bytes()
    os.truncate(journal, len(whole) - 5)  # the last record (trial 1's result) loses its end
    torn = journal.read_bytes()

    assert main(["status", str(results)]) == 0
    assert main(["report", str(results), "--format", "png"]) == 0
    err = capsys.readouterr().err
    assert "ends in a torn line" in err and "Traceback" not in err
    assert journal.read_bytes() == torn and not list(results.glob(f"{JOURNAL_NAME}.torn-*"))  # readers never write

    assert main(["sweep", str(study_file), "--results", str(results), "--trials", "3"]) == 0
    err = capsys.readouterr().err
    assert err.count("ended in a torn line") == 1
    copies = list(results.glob(f"{JOURNAL_NAME}.torn-*"))
    assert len(copies) == 1 and copies[0].read_bytes() == torn
    assert torn_tail(journal) is None
    trials = load(results).get_trials()
    assert _counted(trials) == 3 and not any(t.state in (TrialState.RUNNING, TrialState.WAITING) for t in trials)
    # the trial whose last record was cut is handled like any trial whose worker died: failed, then retried
    cut = trials[1]
    assert cut.state == TrialState.FAIL
    retry = [t for t in trials if t.user_attrs.get("retry_of") == 1]
    assert len(retry) == 1 and retry[0].state == TrialState.COMPLETE and retry[0].params == cut.params


def _limit_file_size(limit: int):
    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit then fail with EFBIG, like ENOSPC
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


def test_full_disk_is_a_clear_error_and_the_journal_stays_readable(tmp_path, small_text_file):
    study_file = write_study(tmp_path / "tiny.toml", small_text_file, trials=1, budget="8k", pruner="none")
    results = tmp_path / "res"
    assert _sweep(study_file, results).returncode == 0
    journal = results / JOURNAL_NAME
    full = _sweep(study_file, results, "--trials", "3", preexec_fn=_limit_file_size(journal.stat().st_size + 300))
    assert full.returncode == 4, full.stderr[-2000:]
    assert "no space to write" in full.stderr and str(journal) in full.stderr and "Traceback" not in full.stderr
    assert torn_tail(journal) is None  # the failed append was cut back to the last whole record
    assert len(load(results).get_trials()) >= 1

    again = _sweep(study_file, results, "--trials", "3")
    assert again.returncode == 0, again.stderr[-2000:]
    trials = load(results).get_trials()
    assert _counted(trials) == 3 and not any(t.state == TrialState.RUNNING for t in trials)


def test_a_changed_study_file_is_refused_with_every_change_listed(tmp_path, small_text_file, capsys):
    study_file = write_study(tmp_path / "tiny.toml", small_text_file, trials=1, budget="8k", evals=1)
    results = tmp_path / "res"
    assert main(["sweep", str(study_file), "--results", str(results)]) == 0
    before = (results / JOURNAL_NAME).read_bytes()
    capsys.readouterr()

    changed = study_file.read_text().replace('per_trial = "8k"', 'per_trial = "9k"').replace(
        'model = "gru"', 'model = "lstm"').replace('seed = 3', 'seed = 3\nlowercase = false')
    study_file.write_text(changed)
    assert main(["sweep", str(study_file), "--results", str(results)]) == 2
    err = capsys.readouterr().err
    for line in ("[budget] per_trial: '8000", "-> '9000", "[fixed] model: 'gru' -> 'lstm'",
                 "[study] lowercase: True -> False", "[study] corpus (its text)", "--results DIR"):
        assert line in err, err
    assert "Traceback" not in err
    assert (results / JOURNAL_NAME).read_bytes() == before  # nothing written, nothing lost

    # what does not change a trial's meaning is allowed, and recorded
    study_file.write_text(write_study(tmp_path / "tiny.toml", small_text_file, trials=2, budget="8k", evals=1)
                          .read_text().replace("length = 40", "length = 30"))
    assert main(["sweep", str(study_file), "--results", str(results)]) == 0
    study = load(results)
    changes = study.user_attrs[CHANGES_ATTR]
    assert len(changes) == 1 and set(changes[0]["changed"]) == {"[study] trials", "[generate]"}
    assert changes[0]["changed"]["[study] trials"] == [1, 2]
    assert study.user_attrs["harness:spec"]["trials"] == 2 and len(study.get_trials()) == 2


def test_a_retry_starts_clean_and_heartbeats_stay_out_of_the_trials(tmp_path):
    storage = open_storage(tmp_path)
    study = optuna.create_study(study_name="s", storage=storage)
    trial = study.ask()
    trial.suggest_float("lr", 1e-3, 1e-2, log=True)
    trial.set_user_attr("curve", [{"index": 1, "device_seconds": 5.0}])
    trial.set_user_attr("reason", "something old")
    storage.record_heartbeat(trial_id(trial))
    study.tell(trial, state=TrialState.FAIL)
    dead = storage.get_trial(trial_id(trial))

    assert RetryTrial()(study, dead) == 0  # a crash: retried once
    retry = study.get_trials()[1]
    assert retry.state == TrialState.WAITING and retry.params == dead.params
    assert retry.user_attrs == {"retry_of": 0}
    assert retry.system_attrs["failed_trial"] == 0 and retry.system_attrs["retry_history"] == [0]
    assert not any("heartbeat" in c for c in study.trials_dataframe().columns)
    crashed_again = optuna.trial.create_trial(state=TrialState.FAIL, params=dead.params,
                                              distributions=dead.distributions, system_attrs=retry.system_attrs)
    assert RetryTrial()(study, crashed_again) is None  # a configuration that kills its worker twice is let go
    assert RetryTrial()(study, crashed_again, interrupted=True) is not None  # an interrupt is never its fault


def test_only_trials_of_dead_workers_are_stale(tmp_path):
    storage = open_storage(tmp_path)
    study = optuna.create_study(study_name="s", storage=storage)
    foreign = study.ask()  # another tool's trial on the same journal: it never beats
    ours = study.ask()
    storage.record_heartbeat(trial_id(ours))
    alive = study.ask()
    storage.record_heartbeat(trial_id(alive))
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    beat = storage.beats_dir / f"{trial_id(ours)}.json"
    beat.write_text(json.dumps({**json.loads(beat.read_text()), "pid": gone.pid}))
    stale = getattr(storage, STALE_TRIAL_IDS)(study_id(study))
    assert stale == [trial_id(ours)]
    assert trial_id(foreign) not in stale and trial_id(alive) not in stale


@pytest.mark.parametrize("interval,grace", [(0, 120), (-1, 120), (20, -5), (20, 0)])
def test_heartbeat_settings_are_checked(tmp_path, interval, grace):
    from optuna.storages.journal import JournalFileBackend

    with pytest.raises(ValueError, match="positive"):
        HeartbeatJournalStorage(JournalFileBackend(str(tmp_path / "j")), tmp_path / "b", interval=interval,
                                grace=grace)


def test_heartbeat_environment_is_checked(monkeypatch):
    monkeypatch.setenv(HEARTBEAT_ENV, "5,20")
    assert heartbeat_settings() == (5, 20)
    for bad in ("5", "a,b", "20,5", "0,10"):
        monkeypatch.setenv(HEARTBEAT_ENV, bad)
        with pytest.raises(HarnessError, match=HEARTBEAT_ENV):
            heartbeat_settings()


def test_a_stop_signal_waits_for_the_end_of_a_deferred_block():
    interrupts.install()
    try:
        reached = False
        with pytest.raises(KeyboardInterrupt, match="SIGTERM"), interrupts.deferred():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.05)
            reached = True  # the signal did not cut the block short
        assert reached
        interrupts.stopping()
        os.kill(os.getpid(), signal.SIGINT)  # ignored while stopping
        time.sleep(0.05)
    finally:
        interrupts.restore()


def _running_trial(results: Path, number: int):
    def check():
        try:
            trials = load(results).get_trials()
        except Exception:
            return None
        return len(trials) > number and trials[number].state == TrialState.RUNNING and \
            "curve" in trials[number].user_attrs
    return check


def test_sigterm_then_ctrl_c_on_the_retry_still_runs_the_configuration(tmp_path, small_text_file):
    study_file = write_study(tmp_path / "tiny.toml", small_text_file, trials=1, budget="150k", pruner="none")
    results = tmp_path / "res"
    for number, sig, name in ((0, signal.SIGTERM, "SIGTERM"), (1, signal.SIGINT, "Ctrl-C")):
        proc = sweep_proc(study_file, results)
        wait_for(_running_trial(results, number))
        proc.send_signal(sig)
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 130, out
        assert f"interrupted ({name})" in out and "Traceback" not in out
        trials = load(results).get_trials()
        assert trials[number].state == TrialState.FAIL
        assert trials[number].user_attrs["reason"].startswith(f"interrupted ({name})")
        assert trials[-1].state == TrialState.WAITING and trials[-1].user_attrs == {"retry_of": number}
    proc = _sweep(study_file, results)
    assert proc.returncode == 0, proc.stderr[-2000:]
    trials = load(results).get_trials()
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.FAIL, TrialState.COMPLETE]
    assert trials[2].params == trials[0].params and _counted(trials) == 1
    curve = trials[2].user_attrs["curve"]
    assert [p["index"] for p in curve] == list(range(1, len(curve) + 1))  # not the dead trials' curve continued
    status = harness_cli("status", results, timeout=120)
    assert "retry of #1" in status.stdout and "retried as #2" in status.stdout


def test_the_study_time_left_is_live_while_a_trial_runs():
    runner = TrialRunner.__new__(TrialRunner)
    runner.study_text, runner.deadline = "1/4 done", time.monotonic() + 100
    first = runner.status()
    time.sleep(1.1)
    assert runner.status() != first and runner.status().startswith("1/4 done | study ")


@pytest.mark.parametrize("content", [b"root:x:0:0:root:/root:/bin/bash\n" * 20, os.urandom(4096), None])
def test_a_file_that_is_not_a_checkpoint_gets_one_line(tmp_path, capsys, content):
    path = tmp_path / "thing"
    if content is None:
        path.mkdir()
    else:
        path.write_bytes(content)
    assert main(["generate", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert ("is a directory" if content is None else "is not a harness checkpoint") in err
    assert "weights_only" not in err and "Traceback" not in err


def test_quick_drill_keeps_every_invariant(tmp_path):
    """The night in miniature (scripts/drill.py --quick): two workers, OOM/NaN/error, SIGKILL, SIGTERM, torn tail."""
    proc = subprocess.run([sys.executable, str(Path(__file__).parent.parent / "scripts" / "drill.py"), "--quick",
                           "--out", str(tmp_path)], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert proc.stdout.count("  PASS  ") == 10 and "  FAIL  " not in proc.stdout


def test_quick_load_drill_keeps_the_plan_under_kills_and_times_the_storage(tmp_path):
    """Many workers in miniature (scripts/load_drill.py --quick): 4 restarted workers, SIGKILLs and SIGTERMs, 32
    trials on the journal; every invariant holds and ask/tell/heartbeat latencies come out of the workers' logs."""
    proc = subprocess.run([sys.executable, str(Path(__file__).parent.parent / "scripts" / "load_drill.py"), "--quick",
                           "--out", str(tmp_path)], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert proc.stdout.count("  PASS  ") == 6 and "  FAIL  " not in proc.stdout
    assert "counted trials == planned (32 of 32)" in proc.stdout
    rows = {line.split()[0]: line.split() for line in proc.stdout.splitlines()[-3:]}
    assert set(rows) == {"ask", "tell", "heartbeat"} and all(float(v) > 0 for r in rows.values() for v in r[2:])
    signals = int(proc.stdout.split(" signals (")[0].rsplit(" ", 1)[1])
    assert 1 <= signals <= 3, proc.stdout  # the quick drill sends max(2, 32 // 10), unless the plan is reached first


def test_machine_read_output_has_no_nan_and_numeric_columns_stay_numeric():
    import pandas as pd

    from harness import common as jsonsafe
    from harness.report import numeric_columns

    assert jsonsafe.dumps({"bpc": float("nan"), "curve": [1.5, float("inf")], "n": 3}) == \
        '{"bpc": null, "curve": [1.5, null], "n": 3}'
    frame = numeric_columns(pd.DataFrame({"energy_j": [None, None], "retry_of": pd.Series([None, 3], dtype=object),
                                          "state": ["COMPLETE", None], "flag": [True, None]}), {"energy_j"})
    assert frame["energy_j"].dtype == float and str(frame["retry_of"].dtype) == "Int64"
    assert not pd.api.types.is_numeric_dtype(frame["state"]) and frame["flag"].dtype == object


def test_a_resumed_study_does_not_propose_the_first_nights_configurations_again(tmp_path, small_text_file):
    """A seeded sampler started anew replays its random sequence; the resumed one is seeded past what ran."""
    study_file = write_study(tmp_path / "tiny.toml", small_text_file, trials=2, budget="6k", evals=1,
                             sampler="random", pruner="none", extra="")
    study_file.write_text(study_file.read_text().replace("[generate]", "[generate]\nenabled = false"))
    results = tmp_path / "res"
    assert main(["sweep", str(study_file), "--results", str(results)]) == 0
    assert main(["sweep", str(study_file), "--results", str(results), "--trials", "4"]) == 0
    trials = load(results).get_trials()
    first, resumed = [t.params for t in trials[:2]], [t.params for t in trials[2:]]
    assert len(resumed) == 2 and not any(p in first for p in resumed)
