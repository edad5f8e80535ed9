"""The command line as a user meets it: help, one-line errors, exit codes, no partial output."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from xdetox.cli.main import build_parser, main

STAGES = [
    "run",
    "compile",
    "toy-model",
    "prepare-data",
    "dpo",
    "merge",
    "generate",
    "score",
    "metrics",
    "report",
]


def test_top_level_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for command in STAGES:
        assert command in out


@pytest.mark.parametrize("command", STAGES)
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as info:
        main([command, "--help"])
    assert info.value.code == 0
    assert "usage: xdetox " + command in capsys.readouterr().out


def test_stage_commands_take_config_and_set():
    parser = build_parser()
    for command in ("dpo", "merge", "generate", "score", "metrics", "report", "run", "compile"):
        sub = parser._subparsers._group_actions[0].choices[command]
        options = {o for a in sub._actions for o in a.option_strings}
        assert {"--config", "--set", "--debug"} <= options, command


def test_bad_config_key_is_one_line_exit_2(tmp_path, capsys):
    code = main(["compile", "-o", str(tmp_path / "x.yaml"), "--set", "training.betta=1"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "training.betta: unknown key" in err
    assert "Traceback" not in err
    assert not (tmp_path / "x.yaml").exists()


def test_malformed_generations_name_file_and_line(tmp_path, capsys):
    gens = tmp_path / "gens.jsonl"
    good = {
        "model": "base",
        "prompt_id": "en-1",
        "language": "en",
        "prompt": "Hi",
        "sample_index": 0,
        "text": "there",
    }
    gens.write_text(json.dumps(good) + "\n" + "{not json\n")
    out = tmp_path / "scores.jsonl"
    code = main(["score", "--generations", str(gens), "--output", str(out)])
    err = capsys.readouterr().err
    assert code == 2
    assert f"{gens}:2:" in err and "Traceback" not in err
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["gens.jsonl"]  # no temporary file left


def test_debug_shows_traceback(tmp_path, capsys):
    code = main(
        [
            "score",
            "--generations",
            str(tmp_path / "missing.jsonl"),
            "--output",
            str(tmp_path / "o.jsonl"),
            "--debug",
        ]
    )
    assert code == 2
    assert "Traceback" in capsys.readouterr().err


def test_installed_console_script_compiles(tmp_path):
    """The `xdetox` entry point as installed by pip, in a fresh process."""
    exe = Path(sys.executable).parent / "xdetox"
    out = tmp_path / "detox.yaml"
    result = subprocess.run(
        [str(exe), "compile", "-o", str(out)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert out.read_text().startswith("# PIPELINE DEFINITION")


def test_generate_protocol_preset_and_flags(tmp_path):
    from transformers import GPT2Config, GPT2LMHeadModel

    from xdetox.toy import load_toy_tokenizer

    tokenizer = load_toy_tokenizer()
    config = GPT2Config(n_layer=1, n_head=2, n_embd=32, n_positions=64, vocab_size=len(tokenizer))
    model_dir = tmp_path / "model"
    GPT2LMHeadModel(config).save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    prompts = tmp_path / "prompts.jsonl"
    rows = [
        {"prompt_id": f"en-{i}", "language": "en", "prompt": f"Hello number {i}"} for i in range(2)
    ]
    prompts.write_text("".join(json.dumps(r) + "\n" for r in rows))

    out = tmp_path / "helm.jsonl"
    args = ["generate", "--model", str(model_dir), "--prompts", str(prompts), "--backend", "hf"]
    assert main([*args, "--protocol", "helm", "--max-tokens", "3", "--output", str(out)]) == 0
    samples = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(samples) == 2 * 5  # helm: 5 samples per prompt (the toy recipe says 10)
    assert all(s["n_tokens"] <= 3 for s in samples)  # the explicit flag beats the preset

    out2 = tmp_path / "helm-n2.jsonl"
    assert main([*args, "--protocol", "helm", "--n", "2", "--output", str(out2)]) == 0
    assert len(out2.read_text().splitlines()) == 2 * 2


@pytest.mark.parametrize(
    ("command", "flags"),
    [
        ("generate", {"--n", "--temperature", "--top-p", "--max-tokens", "--seed", "--protocol",
                      "--backend"}),
        ("score", {"--scorer", "--qps", "--discovery-url", "--cache-dir", "--max-retries",
                   "--classifier-model", "--classifier-preset"}),
        ("agreement", {"--threshold", "--attribute"}),
        ("probe", {"--label"}),
        ("value-vectors", {"--top-k"}),
        ("intervene", {"--offsets", "--language"}),
    ],
)  # fmt: skip
def test_stage_flags_keep_their_names(command, flags):
    """The flags README and scripts use survive their derivation from the config sections."""
    sub = build_parser()._subparsers._group_actions[0].choices[command]
    options = {o for a in sub._actions for o in a.option_strings}
    assert flags <= options, flags - options


def test_score_flags_override_the_scoring_section(tmp_path):
    gens = tmp_path / "gens.jsonl"
    row = {"model": "base", "prompt_id": "en-1", "language": "en", "prompt": "Hi",
           "sample_index": 0, "text": "there"}  # fmt: skip
    gens.write_text(json.dumps(row) + "\n")
    out = tmp_path / "scores.jsonl"
    assert main(["score", "--generations", str(gens), "--output", str(out),
                 "--scorer", "offline", "--set", "scoring.scorer=perspective"]) == 0  # fmt: skip
    assert json.loads(out.read_text().splitlines()[0])["scorer"].startswith("offline")
