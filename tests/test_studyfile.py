"""Every kind of bad study file gives a message that names the file and the key, and nothing starts."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
from sweep_helpers import harness_cli

from harness.common import HarnessError
from harness.search import StudySpec, load_study, make_sampler

GOOD = """
[study]
name = "ok"
trials = 3

[budget]
per_trial = "10s"

[fixed]
model = "lstm"

[space.hidden_dim]
type = "int"
low = 32
high = 128
log = true
"""

CASES = [
    ("[study]\nname = \"x\"\ntrials = \"many\"\n", r"\[study\] trials: must be a whole number, got 'many'"),
    ("[study]\ntrails = 3\n", r"\[study\] trails: unknown key; allowed keys are"),
    ("[sutdy]\n", r"\[top level\] sutdy: unknown key"),
    ("[study]\nsampler = \"bayes\"\n", r"\[study\] sampler: 'bayes' is not one of tpe, random, grid, gp, cmaes"),
    ("[study]\npruner = \"sha\"\n", r"\[study\] pruner: 'sha' is not one of hyperband, asha, median, none"),
    ("[study]\npruner = \"median\"\n[pruner]\nreduction_factor = 3\n", r"\[pruner\] reduction_factor: pruner = \"median\" has no rungs"),
    ("[pruner]\nmin_resource = 0\n", r"\[pruner\] min_resource: is the evaluation of the first rung, 1 to evals"),
    ("[pruner]\nreduction_factor = 1\n", r"\[pruner\] reduction_factor: must be at least 2"),
    ("[pruner]\nbootstrap = 2\n", r"\[pruner\].*bootstrap"),
    ("[study]\ngood_fraction = 1.5\n", r"\[study\] good_fraction: is the share of trials TPE models as good, between 0"),
    ("[study]\nsampler = \"random\"\ngood_fraction = 0.25\n", r"\[study\] good_fraction: .*sampler = 'random'"),
    ("[study]\ntimeout = \"forever\"\n", r"\[study\] timeout: .*budget 'forever' is not understood"),
    ("[study]\nsplit = [0.9, 0.2, 0.1]\n", r"\[study\] split: .*add up to 1"),
    ("[budget]\nper_trial = \"ten seconds\"\n", r"\[budget\] per_trial:"),
    ("[budget]\nevals = 0\n", r"\[budget\] evals: must be at least 1"),
    ("[fixed]\nhidden = 3\n", r"\[fixed\] hidden: unknown key"),
    ("[fixed]\nmodel = \"transformer\"\n", r"\[fixed\] model: model 'transformer' is not a model family"),
    ("[fixed]\ndropout = 1.5\n", r"\[fixed\] dropout: dropout must be in \[0, 1\)"),
    ("[fixed]\nlayers = 2.5\n", r"\[fixed\] layers: must be a whole number"),
    ("[fixed]\nlr = 0.01\n[space.lr]\ntype = \"float\"\nlow = 0.001\nhigh = 0.1\n", r"\[space.lr\]: is also set in \[fixed\]"),
    ("[space.hidden_dim]\ntype = \"int\"\nlow = 256\nhigh = 32\n", r"\[space.hidden_dim\]: low must be below high"),
    ("[space.hidden_dim]\ntype = \"float\"\nlow = 32\nhigh = 64\n", r"\[space.hidden_dim\] type: hidden_dim is a whole number"),
    ("[space.lr]\ntype = \"float\"\nlow = 0.0\nhigh = 0.1\nlog = true\n", r"\[space.lr\] low: a log-scale range must start above 0"),
    ("[space.lr]\ntype = \"float\"\nhigh = 0.1\n", r"\[space.lr\] low: is required"),
    ("[space.lr]\ntype = \"uniform\"\nlow = 0.1\nhigh = 0.2\n", r"\[space.lr\] type: must be \"int\", \"float\" or \"categorical\""),
    ("[space.dropout]\ntype = \"float\"\nlow = 0.0\nhigh = 1.0\n", r"\[space.dropout\]: dropout must be in \[0, 1\)"),
    ("[space.model]\ntype = \"categorical\"\nchoices = []\n", r"\[space.model\] choices: must be a non-empty list"),
    ("[space.model]\ntype = \"categorical\"\nchoices = [\"lstm\", \"tcn\"]\n", r"\[space.model\]: model 'tcn'"),
    ("[space.colour]\ntype = \"categorical\"\nchoices = [1]\n", r"\[space\] colour: unknown key"),
    ("[study]\nsampler = \"grid\"\n[space.lr]\ntype = \"float\"\nlow = 0.001\nhigh = 0.1\n", r"grid sampler needs a finite grid"),
    ("[generate]\ntemperatures = []\n", r"\[generate\] temperatures: must be a non-empty list"),
    ("[study\nname = 1\n", r"not valid TOML"),
]


@pytest.mark.parametrize(("text", "message"), CASES)
def test_bad_study_files(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(HarnessError, match=message) as err:
        load_study(path)
    assert str(path) in str(err.value)


def test_good_study_file_and_defaults(tmp_path):
    path = tmp_path / "ok.toml"
    path.write_text(GOOD)
    spec = load_study(path)
    assert spec.name == "ok" and spec.trials == 3 and spec.budget.amount == 10
    assert spec.space["hidden_dim"].log and spec.sampler == "tpe" and spec.pruner == "hyperband"


def test_grid_study_counts_its_grid(tmp_path):
    path = tmp_path / "g.toml"
    path.write_text("[study]\nsampler = \"grid\"\n[space.layers]\ntype = \"int\"\nlow = 1\nhigh = 3\n"
                    "[space.model]\ntype = \"categorical\"\nchoices = [\"lstm\", \"gru\"]\n")
    spec = load_study(path)
    from harness.search import grid_size

    assert grid_size(spec) == 6


@pytest.mark.parametrize("name", sorted(p.name for p in (Path(__file__).parent.parent / "studies").glob("*.toml")))
def test_shipped_studies_are_valid(name):
    spec = load_study(Path(__file__).parent.parent / "studies" / name)
    assert spec.space


def test_cli_bad_study_exits_2_and_writes_nothing(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("[study]\ntrials = 0\n")
    proc = harness_cli("sweep", path, "--results", tmp_path / "r", timeout=120)
    assert proc.returncode == 2
    assert f"{path}: [study] trials: must be at least 1" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "r").exists()
    missing = harness_cli("sweep", tmp_path / "none.toml", timeout=120)
    assert missing.returncode == 2 and "does not exist" in missing.stderr


def test_status_and_report_of_a_study_never_run(tmp_path, capsys):
    from harness.cli import main

    path = tmp_path / "ok.toml"
    path.write_text(GOOD)
    for command in ("status", "report"):
        assert main([command, str(path), "--results", str(tmp_path / "r")]) == 2
        assert "has no results in" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()  # asking created nothing


def test_bad_corpus_with_workers_stops_before_any_worker(tmp_path):
    path = tmp_path / "ok.toml"
    path.write_text(GOOD.replace('name = "ok"', 'name = "ok"\ncorpus = "missing.txt"'))
    proc = harness_cli("sweep", path, "--workers", "2", "--results", tmp_path / "r", timeout=120,
                       cwd=tmp_path)
    assert proc.returncode == 2 and "'missing.txt' does not exist" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "r").exists()


def test_good_fraction_reaches_tpe_and_survives_the_record_workers_start_from(tmp_path):
    path = tmp_path / "ok.toml"
    path.write_text(GOOD.replace("trials = 3", "trials = 3\ngood_fraction = 0.3"))
    spec = load_study(path)
    again = StudySpec.from_record(spec.to_record())
    assert again.good_fraction == 0.3
    # of 10 finished trials TPE models ceil(0.3 x 10) = 3 as good; Optuna's own rule says 1
    assert make_sampler(again, seed=0)._gamma(10) == 3
    assert make_sampler(StudySpec(path=None, name="default"), seed=0)._gamma is None  # Optuna's own rule


def test_good_fraction_says_optunas_deprecation_itself_and_is_refused_where_gamma_is_gone(tmp_path, monkeypatch):
    """Optuna 4.9 deprecated TPE's gamma for removal in 6.0: the sweep says so once, as a note, and no
    FutureWarning escapes make_sampler; an Optuna without gamma gets an error naming the key, not a TypeError."""
    import optuna

    path = tmp_path / "ok.toml"
    path.write_text(GOOD.replace("trials = 3", "trials = 3\ngood_fraction = 0.3"))
    spec = load_study(path)
    assert any("good_fraction" in note and "6.0.0" in note for note in spec.notes)
    plain = tmp_path / "plain.toml"
    plain.write_text(GOOD)
    assert not any("good_fraction" in note for note in load_study(plain).notes)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Optuna's FutureWarning would raise here
        make_sampler(spec, seed=0)

    class WithoutGamma(optuna.samplers.TPESampler):  # Optuna 6's signature, as its deprecation announces
        def __init__(self, *, seed=None, multivariate=None, constant_liar=True, n_startup_trials=10):
            super().__init__(seed=seed, multivariate=multivariate, constant_liar=constant_liar,
                             n_startup_trials=n_startup_trials)

    monkeypatch.setattr(optuna.samplers, "TPESampler", WithoutGamma)
    with pytest.raises(HarnessError, match=r"\[study\] good_fraction .* no longer takes .* remove the key"):
        make_sampler(spec, seed=0)
    assert isinstance(make_sampler(load_study(plain), seed=0), WithoutGamma)  # without the key: fine
