from __future__ import annotations

from pathlib import Path

import pytest

from breedclf.config import (
    ExperimentConfig,
    SGDConfig,
    StepSchedulerConfig,
    TrainingConfig,
    dump_config,
    load_config,
    override,
    validate_config,
)
from breedclf.errors import ConfigurationError


def test_yaml_round_trip(tmp_path: Path) -> None:
    config = validate_config(
        ExperimentConfig,
        {
            "name": "dogs",
            "output_dir": "runs/dogs",
            "data": {"dataset": "dogimages", "root": "/data/dogImages", "image_size": 160},
            "model": {
                "name": "resnet50",
                "weights": "IMAGENET1K_V2",
                "freeze": {"policy": "backbone"},
            },
            "optimizer": {"name": "sgd", "lr": 0.01, "momentum": 0.8},
            "scheduler": {"name": "step", "step_epochs": 3, "gamma": 0.5, "warmup_epochs": 1},
            "training": {"epochs": 7, "early_stopping": {"patience": 2}, "amp": "bf16"},
        },
    )
    path = tmp_path / "exp.yaml"
    dump_config(config, path)
    loaded = load_config(path)
    assert loaded == config
    assert isinstance(loaded.optimizer, SGDConfig)
    assert isinstance(loaded.scheduler, StepSchedulerConfig)
    assert path.read_text().index("name: sgd") < path.read_text().index("lr: 0.01")


def test_misspelled_key_names_key_and_closest_valid_one(tmp_path: Path) -> None:
    path = tmp_path / "exp.yaml"
    path.write_text("training:\n  epoch: 3\n")
    with pytest.raises(
        ConfigurationError, match=r"unknown key 'epoch' in TrainingConfig; did you mean 'epochs'\?"
    ):
        load_config(path)


def test_misspelled_top_level_and_union_keys() -> None:
    with pytest.raises(ConfigurationError, match=r"'trainig'.*did you mean 'training'"):
        validate_config(ExperimentConfig, {"trainig": {}})
    with pytest.raises(ConfigurationError, match=r"'weight_decy'.*did you mean 'weight_decay'"):
        validate_config(ExperimentConfig, {"optimizer": {"name": "adamw", "weight_decy": 0.1}})


def test_direct_construction_rejects_typos() -> None:
    with pytest.raises(ValueError, match="did you mean 'batch_size'"):
        TrainingConfig(batchsize=4)  # type: ignore[call-arg]


def test_out_of_range_value_names_the_field() -> None:
    with pytest.raises(
        ConfigurationError, match=r"training\.epochs: Input should be greater than 0 \(got 0\)"
    ):
        validate_config(ExperimentConfig, {"training": {"epochs": 0}})
    with pytest.raises(ConfigurationError, match=r"optimizer\.lr: Input should be greater than 0"):
        validate_config(ExperimentConfig, {"optimizer": {"name": "adamw", "lr": -1}})


def test_unknown_optimizer_lists_choices() -> None:
    with pytest.raises(ConfigurationError, match="'adamw', 'sgd'"):
        validate_config(ExperimentConfig, {"optimizer": {"name": "adam"}})


def test_cross_field_split_check() -> None:
    with pytest.raises(ConfigurationError, match="must leave some images for training"):
        validate_config(ExperimentConfig, {"data": {"split": {"valid": 0.5, "test": 0.5}}})


def test_override_validates_and_supports_dotted_keys() -> None:
    base = ExperimentConfig()
    derived = override(base, {"optimizer.lr": 3e-4, "training.epochs": 2})
    assert derived.optimizer.lr == 3e-4
    assert derived.training.epochs == 2
    assert base.training.epochs == 10  # frozen original untouched
    with pytest.raises(ConfigurationError, match="lr"):
        override(base, {"optimizer.lr": -1})
    with pytest.raises(ConfigurationError, match="did you mean 'epochs'"):
        override(base, {"training.epoch": 2})


def test_configs_are_frozen() -> None:
    config = TrainingConfig()
    with pytest.raises(ValueError, match="frozen"):
        config.epochs = 3


def test_load_config_file_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="not found"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "list.yaml"
    bad.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigurationError, match="must contain a YAML mapping"):
        load_config(bad)


# ------------------------------------------------------- union switches and flattening (item 13)


def test_override_switches_a_union_member_in_any_order() -> None:
    base = ExperimentConfig()
    for updates in (
        {"optimizer.name": "sgd", "optimizer.momentum": 0.8},
        {"optimizer.momentum": 0.8, "optimizer.name": "sgd"},
    ):
        cfg = override(base, updates)
        assert isinstance(cfg.optimizer, SGDConfig)
        assert cfg.optimizer.momentum == 0.8
        # AdamW's default weight decay is not carried over: SGD's own default applies.
        assert cfg.optimizer.weight_decay == SGDConfig().weight_decay


def test_switching_keeps_shared_values_the_user_chose_and_drops_foreign_keys() -> None:
    tuned = override(ExperimentConfig(), {"optimizer.lr": 3e-4, "optimizer.betas": [0.8, 0.9]})
    sgd = override(tuned, {"optimizer.name": "sgd"})
    assert isinstance(sgd.optimizer, SGDConfig)
    assert sgd.optimizer.lr == 3e-4  # shared and chosen: kept
    assert "betas" not in sgd.optimizer.model_dump()  # AdamW-only: dropped
    onecycle = override(
        override(ExperimentConfig(), {"scheduler.warmup_epochs": 1}),
        {"scheduler.name": "onecycle", "scheduler.pct_start": 0.2},
    )
    assert onecycle.scheduler.name == "onecycle"
    assert onecycle.scheduler.model_dump() == {
        "name": "onecycle",
        "pct_start": 0.2,
        "div_factor": 25.0,
        "final_div_factor": 1e4,
    }
    with pytest.raises(ConfigurationError, match="'sgdd'"):
        override(ExperimentConfig(), {"optimizer.name": "sgdd"})
    with pytest.raises(ConfigurationError, match="unknown key 'betas' in SGDConfig"):
        override(ExperimentConfig(), {"optimizer.name": "sgd", "optimizer.betas": [0.9, 0.9]})


def test_setting_a_key_of_a_null_section_creates_it() -> None:
    cfg = override(ExperimentConfig(), {"training.early_stopping.patience": 2})
    assert cfg.training.early_stopping is not None
    assert cfg.training.early_stopping.patience == 2
    assert cfg.training.early_stopping.min_delta == 0.0


def test_flatten_round_trips_through_override() -> None:
    from breedclf.config import flatten_config

    base = ExperimentConfig()
    cfg = override(
        base,
        {
            "name": "null",  # a string that YAML would read as None: quoted
            "data.root": "/data/dogImages",
            "data.augment.scale": [0.5, 1.0],
            "model.name": "resnet50",
            "optimizer.name": "sgd",
            "optimizer.weight_decay": 0.01,  # equals AdamW's default, differs from SGD's
            "optimizer.lr": 1e-5,
            "scheduler.name": "onecycle",
            "training.early_stopping.patience": 4,
            "training.grad_clip_norm": 1.0,
        },
    )
    full = flatten_config(cfg)
    assert all(isinstance(v, str) for v in full.values())
    assert full["name"] == "'null'"
    assert override(base, full, parse_strings=True) == cfg
    delta = flatten_config(cfg, base=base)
    assert len(delta) < len(full)
    assert "training.epochs" not in delta
    assert override(base, delta, parse_strings=True) == cfg
    assert flatten_config(base, base=base) == {}


def test_seed_must_be_in_the_range_every_rng_accepts() -> None:
    with pytest.raises(ConfigurationError, match=r"training\.seed"):
        validate_config(ExperimentConfig, {"training": {"seed": -1}})
    with pytest.raises(ConfigurationError, match=r"training\.seed"):
        validate_config(ExperimentConfig, {"training": {"seed": 2**64}})
    assert validate_config(ExperimentConfig, {"training": {"seed": 2**32 - 1}})
