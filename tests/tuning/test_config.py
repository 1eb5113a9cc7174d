"""The study file: round trip and the errors that stop a study before any trial runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from breedclf.config import ExperimentConfig, override
from breedclf.errors import ConfigurationError
from breedclf.tuning import (
    Study,
    StudyConfig,
    check_space,
    dump_study_config,
    load_study_config,
)
from breedclf.tuning._config import resolve_experiment
from tests.tuning.conftest import tiny_experiment, write_study

SPACE: dict[str, Any] = {
    "optimizer.lr": {"type": "continuous", "low": 1e-4, "high": 1e-1, "scaling": "log"},
    "optimizer.name": {"type": "categorical", "values": ["adamw", "sgd"]},
    "optimizer.momentum": {"type": "continuous", "low": 0.5, "high": 0.99},
    "training.batch_size": {"type": "categorical", "values": [16, 32, 64]},
    "training.epochs": {"type": "integer", "low": 1, "high": 3},
    "model.freeze.policy": {"type": "categorical", "values": ["none", "backbone"]},
}


def study(tmp_path: Path, parameters: dict[str, Any] | None = None, **fields: Any) -> StudyConfig:
    return StudyConfig.model_validate(
        {
            "experiment": tiny_experiment(tmp_path / "data"),
            "study_dir": str(tmp_path / "study"),
            "parameters": SPACE if parameters is None else parameters,
            **fields,
        }
    )


def test_study_file_round_trips(tmp_path: Path) -> None:
    (tmp_path / "exp.yaml").write_text("name: x\n", encoding="utf-8")
    path = write_study(
        tmp_path / "study.yaml",
        experiment="exp.yaml",
        study_dir="runs/s",
        trials=7,
        parallel=2,
        timeout=60.5,
        sampler="random",
        pruner={"name": "hyperband", "min_epochs": 2},
        seed=5,
        keep_models="all",
        parameters=SPACE,
    )
    config = load_study_config(path)
    assert config.experiment == tmp_path / "exp.yaml"  # read next to the study file
    assert config.pruner.name == "hyperband"
    dump_study_config(config, tmp_path / "copy.yaml")
    assert load_study_config(tmp_path / "copy.yaml") == config
    assert resolve_experiment(config).name == "x"


def test_overrides_like_train_set(tmp_path: Path) -> None:
    config = override(study(tmp_path), {"trials": 4, "parallel": 2, "pruner.name": "none"})
    assert (config.trials, config.parallel, config.pruner.name) == (4, 2, "none")


def test_misspelled_parameter_path_names_the_closest(tmp_path: Path) -> None:
    config = study(tmp_path, {"optimizer.lrr": {"type": "continuous", "low": 0.1, "high": 0.2}})
    with pytest.raises(ConfigurationError, match=r"optimizer\.lrr.*did you mean 'optimizer\.lr'"):
        check_space(config, resolve_experiment(config))


def test_misspelled_parameter_fails_before_any_trial(tmp_path: Path) -> None:
    config = study(tmp_path, {"training.bach_size": {"type": "categorical", "values": [8]}})
    with pytest.raises(ConfigurationError, match=r"did you mean 'training\.batch_size'"):
        Study(config)
    assert not (tmp_path / "study").exists()


@pytest.mark.parametrize(
    ("path", "spec", "match"),
    [
        pytest.param(
            "optimizer.lr",
            {"type": "continuous", "low": 0.0, "high": 0.1},
            r"optimizer\.lr: low=0\.0 is outside.*greater than 0",
            id="lr-low-zero",
        ),
        pytest.param(
            "optimizer.momentum",
            {"type": "continuous", "low": 0.5, "high": 1.5},
            r"optimizer\.momentum: high=1\.5 is outside.*less than 1",
            id="momentum-above-one",
        ),
        pytest.param(
            "training.batch_size",
            {"type": "continuous", "low": 8, "high": 64},
            r"training\.batch_size: a value inside the range=.* is outside.*integer",
            id="continuous-on-an-integer-field",
        ),
        pytest.param(
            "model.freeze.policy",
            {"type": "categorical", "values": ["none", "everything"]},
            r"model\.freeze\.policy: value='everything' is outside",
            id="categorical-value",
        ),
    ],
)
def test_range_outside_the_field_is_an_error(
    tmp_path: Path, path: str, spec: dict[str, Any], match: str
) -> None:
    parameters = {path: spec}
    if path == "optimizer.momentum":
        parameters["optimizer.name"] = {"type": "categorical", "values": ["sgd"]}
    config = study(tmp_path, parameters)
    with pytest.raises(ConfigurationError, match=match):
        check_space(config, resolve_experiment(config))


def test_log_scaling_needs_a_positive_low(tmp_path: Path) -> None:
    spec = {"type": "continuous", "low": 0, "high": 1, "scaling": "log"}
    with pytest.raises(ValueError, match="scaling log needs low > 0"):
        study(tmp_path, {"optimizer.lr": spec})


@pytest.mark.parametrize("objective", ["test_acc", "test_loss"])
def test_test_objective_is_a_config_error(tmp_path: Path, objective: str) -> None:
    with pytest.raises(ValueError, match=r"reads the test split.*valid_acc or valid_loss"):
        study(tmp_path, objective=objective)


def test_member_specific_parameter_needs_its_member(tmp_path: Path) -> None:
    momentum = {"optimizer.momentum": {"type": "continuous", "low": 0.5, "high": 0.9}}
    config = study(tmp_path, momentum)  # the experiment uses adamw, which has no momentum
    with pytest.raises(
        ConfigurationError, match=r"optimizer\.momentum exists only for optimizer\.name = sgd"
    ):
        check_space(config, resolve_experiment(config))
    only_adamw = {**momentum, "optimizer.name": {"type": "categorical", "values": ["adamw"]}}
    config = study(tmp_path, only_adamw)
    with pytest.raises(ConfigurationError, match=r"values of optimizer\.name \(adamw\)"):
        check_space(config, resolve_experiment(config))
    check_space(study(tmp_path), resolve_experiment(study(tmp_path)))  # with sgd among values


def test_tuner_owned_fields_cannot_be_tuned(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"training\.evaluate_test.*set by the tuner"):
        study(tmp_path, {"training.evaluate_test": {"type": "categorical", "values": [True]}})


def test_sqlite_storage_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="database is locked"):
        study(tmp_path, storage="sqlite:///x.db")


def test_grid_sampler_takes_no_continuous_range(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="sampler grid needs categorical or integer"):
        study(tmp_path, sampler="grid")


def test_default_experiment_config_paths_are_all_known(tmp_path: Path) -> None:
    from breedclf.config import flatten_config
    from breedclf.tuning import tunable_paths

    paths = tunable_paths()
    sgd = override(ExperimentConfig(), {"optimizer.name": "sgd"})
    for key in [*flatten_config(ExperimentConfig()), *flatten_config(sgd)]:
        # The debugger and the profiler only watch a run: no hyperparameter.
        owned = (
            "name",
            "output_dir",
            "callbacks",
            "checkpoint_dir",
            "model_dir",
            "debugger",
            "profiler",
        )
        # early_stopping is a null section: its fields (patience, ...) are the tunable paths
        skipped = ("training.evaluate_test", "training.monitor", "training.early_stopping")
        if key.split(".")[0] not in owned and key not in skipped:
            assert key in paths, key
    assert paths["optimizer.momentum"] == frozenset({"sgd"})
    assert paths["optimizer.lr"] == frozenset()
