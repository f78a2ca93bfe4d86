"""A night in miniature: everything that can go wrong overnight, then a check that nothing was lost.

    python scripts/drill.py                      # journal, ~25 s on 2 CPU cores
    python scripts/drill.py --quick              # the short version the test suite runs
    python scripts/drill.py --storage postgresql://postgres@127.0.0.1:5432/postgres

What it does, with real processes and real signals:
  1. a study with two workers (`--workers 2`), with an injected out-of-memory, a NaN and an error;
  2. once both workers are training (both are SIGSTOPped and read again first, so the trials signalled
     are the ones still training), one worker is SIGKILLed and the other sent SIGTERM. Trials from
     number --before-kill on wait after their first evaluation until then (tests/faults.py's hold), so
     the drill never has to catch the short moment when two quick trials are both past it;
  3. the journal's last line is torn (a few bytes cut off, as a power loss would leave it);
  4. the same command resumes the study to its end.
Then it prints the invariants and exits 1 if any fails: exactly the planned number of counted
trials; none RUNNING or WAITING; every COMPLETE trial has result.json, checkpoint and telemetry;
no configuration ran twice except by a retry that says so; `harness report` builds.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # the fault-injection hook the drill installs (tests/faults.py)

import optuna  # noqa: E402
from faults import fault_env  # noqa: E402
from optuna.trial import TrialState  # noqa: E402

from harness.data import builtin_text  # noqa: E402
from harness.search import JOURNAL_NAME, open_storage  # noqa: E402

STUDY = """
[study]
name = "drill"
corpus = "{corpus}"
trials = {trials}
sampler = "tpe"
pruner = "none"
seed = 11
device = "cpu"
max_consecutive_failures = 6

[budget]
per_trial = "{budget}"
evals = 3

[fixed]
model = "gru"
layers = 1
seq_len = 32
batch_size = 16

[space.hidden_dim]
type = "int"
low = 16
high = 64
log = true

[space.lr]
type = "float"
low = 1e-3
high = 1e-2
log = true

[generate]
temperatures = [0.5, 1.0]
length = 40
samples = 2
"""


def sweep_cmd(study: Path, results: Path, storage: str | None) -> list[str]:
    cmd = [sys.executable, "-m", "harness", "sweep", str(study), "--results", str(results), "--workers", "2"]
    return cmd + (["--storage", storage] if storage else [])


def load(results: Path, storage: str | None) -> optuna.Study:
    return optuna.load_study(study_name="drill", storage=open_storage(results, storage, say=lambda _: None))


def running_workers(results: Path, storage: str | None) -> dict[int, int]:
    """Trial number -> pid of the worker training it (each trial records its worker when it starts)."""
    try:
        study = load(results, storage)
    except Exception:
        return {}
    return {t.number: t.user_attrs["worker"]["pid"] for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
            if "worker" in t.user_attrs and "curve" in t.user_attrs}


def freeze(pid: int, timeout: float = 5.0) -> None:
    """SIGSTOP a worker and wait until the kernel reports it stopped (delivery is asynchronous)."""
    os.kill(pid, signal.SIGSTOP)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return  # gone, or no /proc: nothing more to wait for
        if state in ("T", "t", "Z", "X"):
            return
        time.sleep(0.01)


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise SystemExit(f"drill: timed out waiting for {what}")


def run(args: argparse.Namespace) -> int:
    work = Path(args.out or tempfile.mkdtemp(prefix="harness-drill-"))
    work.mkdir(parents=True, exist_ok=True)
    corpus = work / "corpus.txt"
    if args.corpus:
        corpus = Path(args.corpus).resolve()
    else:
        corpus.write_text(builtin_text("pydoc")[:60_000], encoding="utf-8")
    study = work / "drill.toml"
    study.write_text(STUDY.format(corpus=corpus, trials=args.trials, budget=args.budget))
    results = work / "results"
    # the tests' trial hook (tests/faults.py): the faults, and a hold that keeps every trial from
    # number `before_kill` on waiting after its first evaluation until the kills are done
    held = work / "hold"
    held.touch()
    env = fault_env("oom@1,nan@2,error@3", hold=(args.before_kill, held))
    env["HARNESS_HEARTBEAT"] = "2,10" if args.storage else os.environ.get("HARNESS_HEARTBEAT", "")
    log = open(work / "drill.log", "w")  # noqa: SIM115 (closed before the checks; written by three processes)
    print(f"drill: study {study}, results {results}, storage {args.storage or 'journal'}; log {work / 'drill.log'}")

    # 1-2. two workers; once both are training and a few trials are done, kill one and terminate the other
    t0 = time.monotonic()
    parent = subprocess.Popen(sweep_cmd(study, results, args.storage), stdout=log, stderr=subprocess.STDOUT, env=env)

    def both_training():
        finished = 0
        training = running_workers(results, args.storage)
        try:
            finished = sum(t.state.is_finished() for t in load(results, args.storage).get_trials(deepcopy=False))
        except Exception:
            return None
        pids = set(training.values())
        return training if len(pids) == 2 and finished >= args.before_kill else None

    def frozen_training():
        # Stop both workers, then read again: a trial that finished between the first read and the
        # signals would otherwise take the kill meant for it to the worker's next trial.
        if parent.poll() is not None:
            raise SystemExit(f"drill: the sweep exited ({parent.returncode}) before both workers were training; "
                             f"see {work / 'drill.log'}")
        seen = both_training()
        if not seen:
            return None
        pids = set(seen.values())
        for pid in pids:
            freeze(pid)
        still = both_training()
        if still and set(still.values()) == pids:
            return still
        for pid in pids:
            os.kill(pid, signal.SIGCONT)
        return None

    victims = wait_for(frozen_training, 600, "both workers training")
    (kill_trial, kill_pid), (term_trial, term_pid) = sorted(victims.items())[:2]
    os.kill(kill_pid, signal.SIGKILL)  # a stopped process dies at once
    os.kill(term_pid, signal.SIGTERM)  # pending until it runs again
    os.kill(term_pid, signal.SIGCONT)
    held.unlink()  # nothing holds from here on: the resume runs every trial to its end
    code = parent.wait(timeout=300)
    print(f"drill: SIGKILL worker {kill_pid} (trial {kill_trial}), SIGTERM worker {term_pid} (trial {term_trial}); "
          f"sweep exited {code} after {time.monotonic() - t0:.0f} s")

    # 3. a torn last line, as a power loss during a write leaves it
    torn = False
    journal = results / JOURNAL_NAME
    if args.storage is None:
        size = journal.stat().st_size
        os.truncate(journal, size - 7)
        torn = True
        print(f"drill: tore the journal's last line ({size} -> {size - 7} bytes)")

    # 4. resume to the end with the same command
    log.write("\n=== resume ===\n")
    log.flush()
    resume = subprocess.run(sweep_cmd(study, results, args.storage), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env=env, timeout=1800)
    log.write(resume.stdout)
    print(f"drill: resumed; exited {resume.returncode} after {time.monotonic() - t0:.0f} s in all")
    report = subprocess.run([sys.executable, "-m", "harness", "report", str(study), "--results", str(results),
                             "--format", "png", *(["--storage", args.storage] if args.storage else [])],
                            capture_output=True, text=True, timeout=600)
    log.write(report.stdout + report.stderr)
    log.close()

    trials = load(results, args.storage).get_trials()
    retried = {n for t in trials for n in t.system_attrs.get("retry_history", [])}
    counted = [t for t in trials if not (t.state == TrialState.FAIL and t.number in retried)]
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    missing = [t.number for t in complete
               if not all(Path(p).exists() for p in (Path(t.user_attrs["trial_dir"]) / "result.json",
                                                      t.user_attrs["checkpoint"], t.user_attrs["samples_csv"]))]
    by_params: dict[str, list] = {}
    for t in trials:
        by_params.setdefault(json.dumps(t.params, sort_keys=True), []).append(t)
    unexplained = []
    for group in by_params.values():
        for t in group[1:]:
            if t.user_attrs.get("retry_of") not in {g.number for g in group}:
                unexplained.append(t.number)
    killed, termed = trials[kill_trial], trials[term_trial]
    states = {s.name: sum(t.state == s for t in trials) for s in TrialState}
    checks = [
        (f"counted trials == planned ({len(counted)} of {args.trials})", len(counted) == args.trials),
        ("no trial RUNNING or WAITING", states["RUNNING"] == 0 and states["WAITING"] == 0),
        (f"every COMPLETE trial has result.json, checkpoint, telemetry ({len(complete)} complete)", not missing),
        ("no configuration ran twice except by a retry that says so", not unexplained),
        (f"SIGKILLed trial {kill_trial} failed and retried", killed.state == TrialState.FAIL
         and any(t.user_attrs.get("retry_of") == kill_trial for t in trials)),
        (f"SIGTERMed trial {term_trial} marked interrupted and retried",
         str(termed.user_attrs.get("reason")).startswith("interrupted (SIGTERM)")
         and any(t.user_attrs.get("retry_of") == term_trial for t in trials)),
        ("injected OOM, NaN and error recorded", all(trials[i].user_attrs.get("reason") for i in (1, 2, 3))),
        ("torn journal repaired on resume (copy kept)" if torn else "torn journal: not applicable to a database",
         not torn or ("ended in a torn line" in resume.stdout and
                                                                    any(results.glob(f"{JOURNAL_NAME}.torn-*")))),
        ("resume exited 0", resume.returncode == 0),
        ("harness report builds", report.returncode == 0),
    ]
    print(f"drill: {len(trials)} trials: " + ", ".join(f"{n} {s.lower()}" for s, n in states.items() if n))
    width = max(len(name) for name, _ in checks)
    for name, ok in checks:
        print(f"  {'PASS' if ok else 'FAIL'}  {name:<{width}}")
    if missing or unexplained:
        print(f"  missing files: {missing}; configurations run twice without a retry link: {unexplained}")
    return 0 if all(ok for _, ok in checks) else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="8 short trials (what the test suite runs)")
    parser.add_argument("--trials", type=int, default=None, help="planned trials (default 16, quick 8)")
    parser.add_argument("--budget", default=None, help="per-trial budget (default 60k chars, quick 25k)")
    parser.add_argument("--before-kill", type=int, default=None, help="finished trials before the kills")
    parser.add_argument("--corpus", default=None, help="text file (default: 60k chars of Python's pydoc text)")
    parser.add_argument("--storage", default=None, help="postgresql://... to drill the RDB storage instead")
    parser.add_argument("--out", default=None, help="working directory (default: a new temporary one)")
    args = parser.parse_args()
    args.trials = args.trials or (8 if args.quick else 16)
    args.budget = args.budget or ("25k" if args.quick else "60k")
    args.before_kill = args.before_kill if args.before_kill is not None else 4
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
