"""The interpretability commands as a user meets them: help, a real chained run on the toy
model, and one-line errors (exit 2, nothing written) for bad input."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest

from xdetox.cli.main import build_parser, main

COMMANDS = ["probe", "value-vectors", "intervene", "activations", "alignment", "interpret-run"]
# Small enough for seconds on 2 cores; the toy model is cached after its first build.
TINY = ["--set", "data.max_prompts_per_language=3", "--set", "generation.n=2",
        "--set", "generation.max_new_tokens=8"]  # fmt: skip


def _run(argv: list[str], capsys) -> tuple[int, str, str]:
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _summary(out: str) -> dict:
    return json.loads(out[out.index("{") :])


def _one_line_error(err: str) -> str:
    assert err.count("\n") == 1 and err.startswith("xdetox: error: "), err
    assert "Traceback" not in err
    return err


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as info:
        main([command, "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "usage: xdetox " + command in out
    assert "toy-interpret.yaml" in re.sub(r"\s+", "", out)  # the default recipe is named


def test_commands_take_config_set_and_debug(capsys):
    parser = build_parser()
    choices = parser._subparsers._group_actions[0].choices
    for command in COMMANDS:
        options = {o for a in choices[command]._actions for o in a.option_strings}
        assert {"--config", "--set", "--debug"} <= options, command
    with pytest.raises(SystemExit):
        main(["--help"])
    listing = capsys.readouterr().out
    assert all(command in listing for command in COMMANDS)


@pytest.fixture(scope="module")
def chain(tmp_path_factory) -> dict[str, Path]:
    """probe → value-vectors on the toy model, through the CLI, shared by the tests below."""
    root = tmp_path_factory.mktemp("cli")
    paths = {"probe": root / "probe", "vectors": root / "vectors", "root": root}
    probe = main(["probe", "--model", "toy", "--data", "toy", "--output", str(paths["probe"]),
                  "--set", "interpret.probe.epochs=5",
                  "--set", "interpret.probe.max_examples=300"])  # fmt: skip
    assert probe == 0
    vectors = main(["value-vectors", "--model", "toy", "--probe", str(paths["probe"]),
                    "--prompts", "toy", "--top-k", "10", "--output", str(paths["vectors"]),
                    "--set", "interpret.value_vectors.steps=5", *TINY])  # fmt: skip
    assert vectors == 0
    return paths


def test_probe_command(chain, capsys):
    out = chain["root"] / "probe-again"
    code, stdout, _ = _run(["probe", "--model", "toy", "--data", "toy", "--output", str(out),
                            "--label", "any", "--set", "interpret.probe.epochs=3",
                            "--set", "interpret.probe.max_examples=100"], capsys)  # fmt: skip
    assert code == 0
    summary = _summary(stdout)
    assert summary["label"] == "any" and summary["n_examples"] == 100
    assert summary["data_format"] == "jigsaw" and summary["n_validation"] == 10
    assert "roc_curve" not in summary  # the points are in roc_curve.csv
    assert (out / "probe.safetensors").is_file() and (out / "roc_curve.png").is_file()
    first = json.loads((chain["probe"] / "probe_summary.json").read_text())
    assert first["n_examples"] == 300 and first["config"]["epochs"] == 5


def test_value_vectors_command(chain):
    table = pd.read_csv(chain["vectors"] / "value_vectors.csv")
    assert len(table) == 10  # --top-k wins over the recipe's 20
    summary = json.loads((chain["vectors"] / "value_vectors_summary.json").read_text())
    assert summary["n_prompts"] == 3 and summary["config"]["steps"] == 5
    assert summary["n_kept"] == int(table["kept"].sum()) > 0


def test_intervene_command(chain, capsys):
    out = chain["root"] / "intervention"
    code, stdout, _ = _run(["intervene", "--model", "toy", "--neurons",
                            str(chain["vectors"] / "value_vectors.csv"), "--prompts", "toy",
                            "--offsets", "0,-5", "--language", "en", "--language", "de",
                            "--output", str(out), *TINY], capsys)  # fmt: skip
    assert code == 0
    summary = _summary(stdout)
    assert summary["offsets"] == [0.0, -5.0] and summary["languages"] == ["en", "de"]
    table = pd.read_csv(out / "intervention.csv")
    assert len(table) == 2 * 3  # (en, de, ALL) × 2 offsets
    assert (table[table["language"] != "ALL"]["n"] == 3 * 2).all()  # 3 prompts × 2 samples
    assert (out / "intervention.png").is_file()


@pytest.mark.slow
def test_activations_command(chain, capsys):
    out = chain["root"] / "activations"
    code, stdout, _ = _run(["activations", "--model", "base=toy", "--model", "again=toy",
                            "--neurons", str(chain["vectors"] / "value_vectors.csv"),
                            "--prompts", "toy", "--output", str(out),
                            "--set", "interpret.activations.steps=4",
                            "--set", "interpret.activations.languages=[en, fr]",
                            *TINY], capsys)  # fmt: skip
    assert code == 0
    summary = _summary(stdout)
    assert summary["models"] == ["base", "again"] and summary["languages"] == ["en", "fr"]
    # The same weights under two labels: the same activations.
    means = summary["mean_over_languages"]
    assert means["base"] == pytest.approx(means["again"])
    assert (out / "activations.png").is_file()


def test_alignment_command(chain, capsys):
    metrics = chain["root"] / "metrics.csv"
    rows = [("base", lang, 0.5) for lang in ("de", "es", "fr", "ru", "zh-hans")]
    rows += [("dpo", "de", 0.2), ("dpo", "es", 0.3), ("dpo", "fr", 0.25), ("dpo", "ru", 0.4),
             ("dpo", "zh-hans", 0.45)]  # fmt: skip
    pd.DataFrame(rows, columns=["model", "language", "expected_max_toxicity"]).to_csv(
        metrics, index=False
    )
    out = chain["root"] / "alignment"
    code, stdout, _ = _run(["alignment", "--model", "toy", "--pairs", "toy", "--output", str(out),
                            "--metrics", str(metrics),
                            "--set", "interpret.alignment.max_pairs_per_language=10"],
                           capsys)  # fmt: skip
    assert code == 0
    summary = _summary(stdout)
    assert summary["n_pairs"] == {lang: 10 for lang in ("de", "es", "fr", "ru", "zh-hans")}
    assert summary["correlation"]["tuned"] == "dpo" and summary["correlation"]["n_languages"] == 5
    assert (out / "alignment_vs_drop.csv").is_file() and (out / "alignment.png").is_file()


# --- bad input: one line naming what is wrong, exit 2, nothing written -------------------------


def test_probe_with_bad_csv(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("comment,score\nhello,1\n")
    out = tmp_path / "probe"
    code, _, err = _run(
        ["probe", "--model", "toy", "--data", str(bad), "--output", str(out)], capsys
    )
    assert code == 2
    assert f"{bad}:1: expected Jigsaw columns" in _one_line_error(err)
    assert not out.exists()


def test_intervene_with_bad_neuron_file(chain, tmp_path, capsys):
    neurons = tmp_path / "neurons.csv"
    neurons.write_text("layer,index\n0,3\n1,x\n")
    out = tmp_path / "intervention"
    code, _, err = _run(["intervene", "--model", "toy", "--neurons", str(neurons),
                         "--prompts", "toy", "--output", str(out)], capsys)  # fmt: skip
    assert code == 2
    assert f"{neurons}:3: fields 'layer' and 'index' must be integers" in _one_line_error(err)
    assert not out.exists()


def test_intervene_with_bad_offsets(chain, tmp_path, capsys):
    out = tmp_path / "intervention"
    code, _, err = _run(["intervene", "--model", "toy", "--neurons",
                         str(chain["vectors"] / "value_vectors.csv"), "--prompts", "toy",
                         "--offsets", "0,minus one", "--output", str(out)], capsys)  # fmt: skip
    assert code == 2
    assert "--offsets '0,minus one': expected numbers" in _one_line_error(err)
    assert not out.exists()


def test_value_vectors_with_missing_probe(tmp_path, capsys):
    out = tmp_path / "vectors"
    missing = tmp_path / "nothing"
    code, _, err = _run(["value-vectors", "--model", "toy", "--probe", str(missing),
                         "--prompts", "toy", "--output", str(out)], capsys)  # fmt: skip
    assert code == 2
    assert f"{missing}: probe file not found" in _one_line_error(err)
    assert not out.exists()


def test_activations_with_bad_model_label(chain, tmp_path, capsys):
    out = tmp_path / "activations"
    code, _, err = _run(["activations", "--model", "=toy", "--neurons",
                         str(chain["vectors"] / "value_vectors.csv"), "--prompts", "toy",
                         "--output", str(out)], capsys)  # fmt: skip
    assert code == 2
    assert "--model '=toy': expected LABEL=DIR" in _one_line_error(err)
    assert not out.exists()


def test_alignment_with_a_pair_missing_its_translation(tmp_path, capsys):
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text('{"en": "Hello.", "text": "Hallo.", "language": "de"}\n'
                     '{"en": "Bye.", "language": "de"}\n')  # fmt: skip
    out = tmp_path / "alignment"
    code, _, err = _run(["alignment", "--model", "toy", "--pairs", str(pairs),
                         "--output", str(out)], capsys)  # fmt: skip
    assert code == 2
    assert f"{pairs}:2: missing field(s) 'text'" in _one_line_error(err)
    assert not out.exists()


def test_unknown_config_key(tmp_path, capsys):
    out = tmp_path / "probe"
    code, _, err = _run(["probe", "--model", "toy", "--data", "toy", "--output", str(out),
                         "--set", "interpret.probe.epohcs=3"], capsys)  # fmt: skip
    assert code == 2
    assert "interpret.probe.epohcs: unknown key" in _one_line_error(err)
    assert not out.exists()


def test_interpret_run_with_a_bad_recipe_writes_nothing(tmp_path, capsys):
    run_dir = tmp_path / "run"
    code, _, err = _run(["interpret-run", "--output", str(run_dir),
                         "--set", "data.languages=[de, fr]"], capsys)  # fmt: skip
    assert code == 2
    assert "interpret.value_vectors.language: 'en' is not among" in _one_line_error(err)
    assert not run_dir.exists()
