"""Config loading: merge order, overrides, one-line errors naming file and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from xdetox.config import (
    Config,
    DataConfig,
    TrainingConfig,
    load_config,
    to_params,
    validate_section,
)
from xdetox.errors import ConfigError

CONFIGS = Path(__file__).resolve().parent.parent / "pipelines" / "configs"


def test_default_is_the_toy_recipe():
    config = load_config()
    assert config.name == "toy"
    assert config.model.base == "toy"
    assert "en" in config.data.languages and len(config.data.languages) >= 5


def test_later_files_and_overrides_win(tmp_path: Path):
    first = tmp_path / "a.yaml"
    first.write_text("training: {beta: 0.3, learning_rate: 1.0e-4}\n")
    second = tmp_path / "b.yaml"
    second.write_text("training: {beta: 0.5}\ncluster: {parallelism: 3}\n")
    overrides = ["training.learning_rate=2e-3", "data.languages=[en, fr]"]
    config = load_config([first, second], overrides)
    assert config.training.beta == 0.5  # second file wins
    assert config.training.learning_rate == pytest.approx(2e-3)  # --set wins over files
    assert config.data.languages == ["en", "fr"]
    assert config.cluster.parallelism == 3
    assert config.training.max_grad_norm == TrainingConfig().max_grad_norm  # untouched default


def test_unknown_key_names_file_and_key(tmp_path: Path):
    path = tmp_path / "bad.yaml"
    path.write_text("training:\n  betta: 0.1\n")
    with pytest.raises(ConfigError) as info:
        load_config([path])
    message = str(info.value)
    assert str(path) in message and "training.betta" in message and "unknown key" in message
    assert "\n" not in message


def test_wrong_type_names_key(tmp_path: Path):
    path = tmp_path / "bad.yaml"
    path.write_text("generation: {n: many}\n")
    with pytest.raises(ConfigError, match=r"generation\.n"):
        load_config([path])


def test_invalid_yaml_names_line(tmp_path: Path):
    path = tmp_path / "broken.yaml"
    path.write_text("name: x\ntraining: {beta: [\n")
    with pytest.raises(ConfigError, match=rf"{path}:\d+: not valid YAML"):
        load_config([path])


def test_missing_file_and_bad_override():
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(["/nonexistent/recipe.yaml"])
    with pytest.raises(ConfigError, match="expected key=value"):
        load_config(None, ["training.beta"])
    with pytest.raises(ConfigError, match="not a section"):
        load_config(None, ["name.sub=1"])


def test_every_shipped_recipe_validates(recipe_paths):
    assert len(recipe_paths) >= 3
    for path in recipe_paths:
        load_config([path])


def test_sections_survive_the_trip_through_kfp_struct_parameters(recipe_paths):
    """KFP Structs hold no nulls and turn ints into floats; the component must see the same."""
    for path in recipe_paths:
        config = load_config([path])
        for name in ("data", "training", "generation", "scoring", "metrics"):
            section = getattr(config, name)
            as_struct = {
                k: float(v) if isinstance(v, int) and not isinstance(v, bool) else v
                for k, v in to_params(section).items()
            }
            again = validate_section(type(section), as_struct, name)
            assert again == section, f"{path}: {name} changed through to_params"


def test_component_side_validation_error_is_one_line():
    with pytest.raises(ConfigError) as info:
        validate_section(DataConfig, {"eval_fraction": 2}, "pipeline parameter 'data'")
    assert "pipeline parameter 'data': eval_fraction" in str(info.value)


def test_paper_recipe_matches_reference():
    """XG's DPO hyperparameters (Li, Yong & Bach 2024, arXiv:2406.16235, Table 6)."""
    t = load_config([CONFIGS / "xg-mgpt.yaml"]).training
    assert (t.beta, t.learning_rate, t.warmup_steps, t.optim) == (0.1, 1e-5, 150, "rmsprop")
    assert (t.max_grad_norm, t.per_device_train_batch_size, t.num_train_epochs) == (10, 4, 5)
    assert (t.max_prompt_length, t.max_length, t.eval_steps, t.save_steps) == (64, 256, 25, 25)
    assert (t.early_stopping_patience, t.seed, t.mode) == (10, 0, "full")
    assert Config().generation.n == 25 and Config().generation.top_p == 0.8


def test_sampling_protocol_fills_only_unset_values():
    from xdetox.config import GenerationConfig

    rtp = GenerationConfig(protocol="rtp")
    assert (rtp.n, rtp.temperature, rtp.top_p, rtp.max_new_tokens) == (25, 1.0, 0.9, 20)
    helm = load_config(None, ["generation.protocol=helm", "generation.n=7"]).generation
    # the toy recipe sets n/temperature/top_p itself: the preset fills only what is unset
    assert helm.n == 7 and helm.top_p == load_config().generation.top_p
    assert GenerationConfig(protocol="greedy").temperature == 0.0
    with pytest.raises(ConfigError, match=r"generation\.protocol"):
        load_config(None, ["generation.protocol=nucleus"])
