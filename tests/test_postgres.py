"""Two workers sharing one study through a real PostgreSQL server that this test starts and stops."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile

import pytest
from optuna.trial import TrialState
from sweep_helpers import harness_cli, load, write_study


def _pg_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


def _as_postgres(cmd: list[str]) -> list[str]:
    """The server refuses to run as root; tests run as root in CI, so switch to the postgres user there."""
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *cmd]
    return cmd


@pytest.fixture(scope="module")
def postgres_url():
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    if not initdb or not pg_ctl:
        pytest.skip("PostgreSQL server programs (initdb, pg_ctl) are not installed; .ci/run installs them")
    pytest.importorskip("psycopg", reason="psycopg (3) is not installed: pip install -e '.[dev]'")
    root = tempfile.mkdtemp(prefix="harness-pg-")
    os.chmod(root, 0o777)
    data = os.path.join(root, "data")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    subprocess.run(_as_postgres([initdb, "-D", data, "-A", "trust", "-U", "postgres"]), check=True,
                   capture_output=True)
    subprocess.run(_as_postgres([pg_ctl, "-D", data, "-l", os.path.join(root, "log"), "-w", "-o",
                                 f"-p {port} -k {root} -c listen_addresses=127.0.0.1", "start"]),
                   check=True, capture_output=True)
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"  # the form the README shows
    finally:
        subprocess.run(_as_postgres([pg_ctl, "-D", data, "-m", "immediate", "stop"]), capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


def test_two_workers_on_postgresql_run_each_planned_trial_once(tmp_path, small_text_file, postgres_url):
    study_file = write_study(tmp_path / "pg.toml", small_text_file, name="pg", trials=6, pruner="none")
    results = tmp_path / "res"
    proc = harness_cli("sweep", study_file, "--results", results, "--storage", postgres_url, "--workers", "2",
                       timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    trials = load(results, "pg", postgres_url).get_trials()
    assert len(trials) == 6
    assert all(t.state == TrialState.COMPLETE for t in trials)
    assert len({t.user_attrs["fingerprint"]["pid"] for t in trials}) == 2
    assert not (results / "study.journal").exists()  # everything went to the database

    status = harness_cli("status", study_file, "--results", results, "--storage", postgres_url, timeout=120)
    assert status.returncode == 0 and "6 complete" in status.stdout


def _sweep_storage(tmp_path, small_text_file, url: str) -> subprocess.CompletedProcess:
    study_file = write_study(tmp_path / "pg.toml", small_text_file, name="pg")
    return harness_cli("sweep", study_file, "--storage", url, "--results", tmp_path / "r", timeout=120)


def test_unreachable_database_is_a_clear_error(tmp_path, small_text_file):
    pytest.importorskip("psycopg")
    proc = _sweep_storage(tmp_path, small_text_file, "postgresql://nobody:secret@127.0.0.1:9/none")
    assert proc.returncode == 2
    assert "cannot reach a PostgreSQL server at 127.0.0.1:9 (as user nobody)" in proc.stderr, proc.stderr
    assert "secret" not in proc.stderr and "Traceback" not in proc.stderr and "driver" not in proc.stderr


def test_a_refused_login_and_a_missing_database_are_named(tmp_path, small_text_file, postgres_url):
    base = postgres_url.rsplit("/", 1)[0]
    proc = _sweep_storage(tmp_path, small_text_file, base.replace("postgres@", "ghost:pw@") + "/postgres")
    assert proc.returncode == 2 and "has no user ghost" in proc.stderr, proc.stderr
    assert ":pw@" not in proc.stderr
    proc = _sweep_storage(tmp_path, small_text_file, base + "/nodb")
    assert proc.returncode == 2 and "has no database 'nodb'" in proc.stderr, proc.stderr


def test_the_postgres_scheme_means_psycopg3():
    from harness.search import database_url

    assert database_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    assert database_url("postgres://u@h:5433/db") == "postgresql+psycopg://u@h:5433/db"
    assert database_url("postgresql+psycopg2://u@h/db") == "postgresql+psycopg2://u@h/db"  # an explicit choice stays


def _harness(*args: str, host: str, timeout: int = 600) -> subprocess.CompletedProcess:
    env = dict(os.environ, HARNESS_HOST=host)
    return harness_cli(*args, timeout=timeout, env=env)


def test_two_hosts_share_one_study_and_each_reports_it_whole(tmp_path, small_text_file, postgres_url):
    """Host A and host B: two results directories, one PostgreSQL study. B's status and report are complete from
    the storage and name what only A's disk holds; commands given A's trial say where its checkpoint is; after an
    rsync of A's trials/ into B's results directory, the report finds everything."""
    study_file = str(write_study(tmp_path / "two.toml", small_text_file, name="two", trials=4, pruner="none"))
    a, b = tmp_path / "host-a" / "results", tmp_path / "host-b" / "results"
    db = ["--storage", postgres_url]
    for host, results, trials in (("host-a", a, "2"), ("host-b", b, "4")):
        proc = _harness("sweep", study_file, "--results", str(results), "--trials", trials, *db, host=host)
        assert proc.returncode == 0, proc.stderr[-3000:]
    study = load(b, "two", postgres_url)
    ran_on = {t.number: t.user_attrs["host"] for t in study.trials}
    assert sorted(ran_on.values()) == ["host-a", "host-a", "host-b", "host-b"]
    assert {t.user_attrs["results_dir"] for t in study.trials} == {str(a.resolve()), str(b.resolve())}
    on_a = min(n for n, h in ran_on.items() if h == "host-a")
    away = tmp_path / "elsewhere"
    (tmp_path / "host-a").rename(away)  # host A's disk is not this machine's

    status = _harness("status", study_file, "--results", str(b), *db, host="host-b")
    assert status.returncode == 0 and "4 complete" in status.stdout
    assert "ran on: host-a (2 trials), host-b (2 trials)" in status.stdout
    report = _harness("report", study_file, "--results", str(b), "--format", "png", *db, host="host-b")
    assert report.returncode == 0, report.stderr[-3000:]
    md = (b / "report" / "report.md").read_text()
    section = md.split("## Files on other machines")[1]
    assert "built on host-b" in section and "host-a (2 trials), host-b (2 trials)" in section
    assert f"{a.resolve()}/trials/{on_a:04d}/best.pt" in section
    assert f"rsync -a host-a:{a.resolve()}/trials/ {b}/trials/" in section
    import pandas as pd

    table = pd.read_csv(b / "report" / "trials.csv")
    assert table["val_bpc"].notna().sum() == 4 and table["host"].tolist().count("host-a") == 2  # numbers: complete

    for command in (["generate", "--length", "5"], ["evaluate"], ["embeddings"], ["gradflow", "--steps", "5"]):
        proc = _harness(command[0], study_file, "--trial", str(on_a), "--results", str(b), *db, *command[1:],
                        host="host-b")
        assert proc.returncode == 2, (command, proc.stderr)
        line = f"harness: error: trial #{on_a}'s checkpoint is on host-a at {a.resolve()}/trials/{on_a:04d}/best.pt"
        assert proc.stderr.startswith(line) and proc.stderr.count("\n") == 1, proc.stderr
    confirm = _harness("confirm", study_file, "--results", str(b), "--top", "1", "--seeds", "1", *db, host="host-b")
    assert confirm.returncode == 0, confirm.stderr[-3000:]  # retrains from the storage: no file of A's needed

    shutil.copytree(away / "results" / "trials", b / "trials", dirs_exist_ok=True)  # the README's rsync
    generated = _harness("generate", study_file, "--trial", str(on_a), "--results", str(b), *db, "--length", "5",
                         host="host-b")
    assert generated.returncode == 0, generated.stderr
    report = _harness("report", study_file, "--results", str(b), "--format", "png", *db, host="host-b")
    assert report.returncode == 0 and "Files on other machines" not in (b / "report" / "report.md").read_text()
    assert (b / "report" / "embeddings.png").exists()
