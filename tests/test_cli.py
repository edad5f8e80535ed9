"""The command line as a user meets it: help, one-line errors, exit codes, no partial output."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines.cli.main import build_parser, main

STAGES = ["run", "compile", "toy-model", "prepare-data", "dpo", "merge", "generate", "score",
          "metrics", "report"]  # fmt: skip


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
    good = {"model": "base", "prompt_id": "en-1", "language": "en", "prompt": "Hi",
            "sample_index": 0, "text": "there"}  # fmt: skip
    gens.write_text(json.dumps(good) + "\n" + "{not json\n")
    out = tmp_path / "scores.jsonl"
    code = main(["score", "--generations", str(gens), "--output", str(out)])
    err = capsys.readouterr().err
    assert code == 2
    assert f"{gens}:2:" in err and "Traceback" not in err
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["gens.jsonl"]  # no temporary file left


def test_debug_shows_traceback(tmp_path, capsys):
    code = main(["score", "--generations", str(tmp_path / "missing.jsonl"),
                 "--output", str(tmp_path / "o.jsonl"), "--debug"])  # fmt: skip
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
