"""`xdetox --help` lists every command under one group; the RL commands name their reward."""

from __future__ import annotations

import argparse

import pytest

from xdetox.cli.main import COMMAND_GROUPS, build_parser, grouped_commands, main


def _registered() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(action.choices)


def test_every_registered_command_is_in_exactly_one_group():
    commands = set(_registered())
    listed = [name for names in COMMAND_GROUPS.values() for name in names]
    assert sorted(set(listed)) == sorted(listed), "a command is in two groups"
    assert commands - set(listed) == set(), "registered but in no group of COMMAND_GROUPS"
    assert set(listed) - commands == set(), "grouped but not a registered command"


def test_an_ungrouped_command_still_shows_under_other():
    groups = grouped_commands({"run": "", "brand-new": ""})
    assert groups == {"pipelines": ["run"], "other": ["brand-new"]}


def test_top_level_help_lists_the_commands_by_group(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    # "  <group>:" headings, each followed by "    <command>  <help>" lines (help continues
    # on deeper-indented lines).
    headings: list[str] = []
    seen: dict[str, str] = {}
    for line in out.splitlines():
        if line.startswith("  ") and line.strip()[:-1] in COMMAND_GROUPS:
            headings.append(line.strip()[:-1])
        elif headings and line.startswith("    ") and line[4] != " ":
            seen[line.split()[0]] = headings[-1]
    assert headings == list(COMMAND_GROUPS)
    assert seen == {name: g for g, names in COMMAND_GROUPS.items() for name in names}
    assert "train a linear toxicity probe" in out  # the commands' own help lines


@pytest.mark.parametrize("method", ["ppo", "rloo", "grpo"])
def test_rl_commands_name_the_reward(method, capsys):
    with pytest.raises(SystemExit):
        main([method, "--help"])
    out = capsys.readouterr().out
    assert "reward (rl.reward)" in out
    for flag, key in (
        ("--reward-kind {classifier,scorer}", "rl.reward.kind"),
        ("--reward-classifier", "rl.reward.classifier"),
        ("--reward-label-index", "rl.reward.label_index"),
        ("--reward-transform", "rl.reward.transform"),
        ("--scorer", "scoring.scorer"),
        ("--classifier-model", "scoring.classifier.model"),
    ):
        assert flag in out and f"[{key}]" in out


def test_reward_flags_reach_the_config(tmp_path):
    from xdetox.cli.training_commands import _config

    args = build_parser().parse_args(
        ["grpo", "--model", "toy", "--output", str(tmp_path / "out"),
         "--reward-kind", "scorer", "--reward-transform", "negate", "--scorer", "wordlist",
         "--reward-classifier", "some/classifier", "--reward-label-index", "1"]
    )  # fmt: skip
    config = _config(args)  # what cmd_train trains with
    assert config.training.method == "grpo"
    assert config.rl.reward.kind == "scorer"
    assert config.rl.reward.transform == "negate"
    assert config.rl.reward.classifier == "some/classifier"
    assert config.rl.reward.label_index == 1
    assert config.scoring.scorer == "wordlist"
