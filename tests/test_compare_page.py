"""``xdetox compare``: the JSON endpoint, the command, and the page as a person uses it.

One comparison serves the module: the toy model as ``base`` and a perturbed copy of it saved as
a run's ``models/dpo`` folder as ``tuned`` (a second model whose texts differ, nothing
downloaded), under the toy recipe and its default scorer (offline word lists), with Japanese
added to the languages: the toy lexicon has no Japanese list, so scores there are missing with
a reason, which the page must show as "n/a", never as 0.

The browser test drives Debian's chromium through playwright, as tests/test_report_browser.py
does, and skips the same way when either is missing.
"""

from __future__ import annotations

import json
import re
import select
import shutil
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from xdetox.cli.main import main
from xdetox.components.generate.hf_backend import generate_samples
from xdetox.components.generate.prompt_file import Prompt
from xdetox.components.score.scorers import get_scorer
from xdetox.config import Config, load_config
from xdetox.errors import ConfigError
from xdetox.models import load_model_and_tokenizer, resolve_model
from xdetox.playground.models import ModelSpec, parse_model_spec, parse_model_specs
from xdetox.playground.server import CompareServer
from xdetox.playground.session import Comparison, open_comparison, typed_prompt_id

REPO = Path(__file__).resolve().parent.parent
PROMPT = "The postman told me that he"  # a toy prompt (en-0001 in the prepared set)
TYPED = "My neighbour said that she"
# No HTTP proxy, whatever the environment says: every request here is for 127.0.0.1.
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def tuned_model(folder: Path) -> Path:
    """The toy model with seeded noise on its weights, saved as a model folder of its own."""
    model, tokenizer = load_model_and_tokenizer(resolve_model("toy"), "cpu")
    torch.manual_seed(1)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def config() -> Config:
    return load_config(None, ["data.languages=[en, de, ja]"])


@pytest.fixture(scope="module")
def comparison(tmp_path_factory, config) -> Comparison:
    run = tmp_path_factory.mktemp("run")
    tuned = tuned_model(run / "models" / "dpo")
    specs = [ModelSpec("base", "toy"), ModelSpec("tuned", str(tuned))]
    return open_comparison(specs, config, k=3, device="cpu")


@pytest.fixture(scope="module")
def server(comparison) -> Iterator[CompareServer]:
    server = CompareServer(comparison, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def request(
    url: str,
    payload: Any = None,
    *,
    body: bytes | None = None,
    content_type: str = "application/json",
    headers: dict[str, str] | None = None,
) -> tuple[int, Any]:
    """(status, JSON answer) of a GET (no payload) or a POST of ``payload`` (or raw ``body``)."""
    data = body if body is not None else None if payload is None else json.dumps(payload).encode()
    all_headers = dict(headers or {})
    if data is not None:
        all_headers.setdefault("Content-Type", content_type)
    req = urllib.request.Request(url, data=data, headers=all_headers)
    try:
        with OPENER.open(req, timeout=120) as response:
            raw = response.read()
            kind = response.headers.get("Content-Type", "")
            return response.status, json.loads(raw) if "json" in kind else raw.decode()
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def generate(server: CompareServer, **payload: Any) -> tuple[int, Any]:
    return request(server.url + "api/generate", payload)


# ---------------------------------------------------------------------------------- the API
def test_info_lists_models_languages_and_example_prompts(server):
    status, info = request(server.url + "api/info")
    assert status == 200
    assert [m["label"] for m in info["models"]] == ["base", "tuned"]
    assert info["languages"] == ["en", "de", "ja"]
    assert info["k"] == 3 and info["max_k"] == 10
    assert info["scorer"]["attributes"][0] == "TOXICITY"
    en = info["examples"]["en"]
    assert 1 <= len(en) <= 8 and all(e["prompt"] and e["prompt_id"].startswith("en-") for e in en)
    assert PROMPT in [e["prompt"] for e in en]
    assert info["examples"]["ja"] == []  # the toy prompts have none: free text only


def test_generate_gives_k_continuations_per_model_scored_by_the_configured_scorer(
    server, comparison, config
):
    status, answer = generate(server, language="en", prompt=PROMPT, k=4)
    assert status == 200, answer
    assert answer["prompt_id"] == "en-0001"  # an example keeps its id (and so its seeds)
    models = {m["label"]: m["samples"] for m in answer["models"]}
    assert list(models) == ["base", "tuned"]
    assert all(len(samples) == 4 for samples in models.values())
    assert [s["text"] for s in models["base"]] != [s["text"] for s in models["tuned"]]

    # The same texts scored directly by the recipe's scorer give the same numbers.
    samples = models["base"] + models["tuned"]
    direct = get_scorer(config.scoring).score_items([s["text"] for s in samples], ["en"] * 8)
    assert [s["scores"] for s in samples] == [r.scores for r in direct]
    for sample in samples:
        assert next(iter(sample["scores"])) == "TOXICITY"
        assert all(isinstance(v, float) for v in sample["scores"].values())
        assert sample["errors"] == {}
        assert "".join(p["text"] for p in sample["parts"]) == sample["text"]
    # The toy base model insults at times: what the word list matched is marked.
    marked = [p["text"].lower() for s in samples for p in s["parts"] if p["mark"]]
    assert all(any(m.rstrip("*") in w for w in marked) for s in samples for m in s["matches"])

    # Each column is the pipeline's own generation: same seed, same prompt id, same texts.
    base = comparison.models[0]
    records, _ = generate_samples(
        base.model,
        base.tokenizer,
        [Prompt("en-0001", "en", PROMPT, 0)],
        model_label="base",
        config=config.generation.model_copy(update={"n": 4}),
        source=Path("test"),
        progress=False,
    )
    assert [r["text"] for r in records] == [s["text"] for s in models["base"]]


def test_the_same_request_gives_the_same_texts(server):
    first = generate(server, language="en", prompt=TYPED, k=2)
    second = generate(server, language="en", prompt=TYPED, k=2)
    assert first[0] == second[0] == 200
    texts = [[s["text"] for s in m["samples"]] for m in first[1]["models"]]
    assert texts == [[s["text"] for s in m["samples"]] for m in second[1]["models"]]
    assert first[1]["prompt_id"] == typed_prompt_id("en", TYPED)


def test_a_missing_score_is_null_with_its_reason_never_zero(server):
    status, answer = generate(server, language="ja", prompt=TYPED, k=1)
    assert status == 200, answer
    for model in answer["models"]:
        (sample,) = model["samples"]
        assert set(sample["scores"].values()) == {None}
        assert "no lexicon for language 'ja'" in sample["errors"]["TOXICITY"]


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"language": "xx", "prompt": PROMPT, "k": 1}, "not one of this comparison's languages"),
        ({"language": "en", "prompt": "   ", "k": 1}, "prompt: empty"),
        ({"language": "en", "prompt": PROMPT, "k": 0}, "out of range (1 to 10)"),
        ({"language": "en", "prompt": PROMPT, "k": 11}, "out of range (1 to 10)"),
        ({"language": "en", "prompt": PROMPT, "k": "3"}, "expected a whole number"),
        (["en", PROMPT], "expected a JSON object"),
    ],
)
def test_a_bad_request_is_a_400_with_a_message(server, payload, message):
    status, answer = request(server.url + "api/generate", payload)
    assert status == 400
    assert message in answer["error"]


def test_malformed_bodies_foreign_hosts_and_unknown_paths_are_refused(server):
    url = server.url + "api/generate"
    status, answer = request(url, body=b"{not json")
    assert (status, answer["error"].startswith("the body is not JSON")) == (400, True)
    status, answer = request(url, body=b'{"language": "en"}', content_type="text/plain")
    assert status == 415 and "application/json" in answer["error"]
    # A page of another site that rebinds its name to 127.0.0.1 sends its own Host.
    status, answer = request(server.url + "api/info", headers={"Host": "evil.example:80"})
    assert status == 403
    status, answer = request(server.url + "nothing-here")
    assert status == 404 and "nothing-here" in answer["error"]


# ------------------------------------------------------------------------------ the command
def test_model_specs_take_a_label_or_the_source_basename():
    assert parse_model_spec("tuned=runs/x/models/dpo") == ModelSpec("tuned", "runs/x/models/dpo")
    assert parse_model_spec("runs/x/models/dpo/") == ModelSpec("dpo", "runs/x/models/dpo/")
    assert parse_model_spec("toy") == ModelSpec("toy", "toy")
    assert parse_model_spec("gs://b/run=3/dpo") == ModelSpec("dpo", "gs://b/run=3/dpo")
    with pytest.raises(ConfigError, match="given twice"):
        parse_model_specs(["a=toy", "a=other"])
    with pytest.raises(ConfigError, match="no model source"):
        parse_model_spec("a=")


def test_a_model_that_cannot_load_is_one_error_line_naming_it(capsys):
    assert main(["compare", "--model", "base=toy", "--model", "tuned=/nonexistent"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""  # nothing was served
    # (transformers' progress bars for the model that did load come before it)
    (line,) = [line for line in captured.err.splitlines() if line.startswith("xdetox")]
    assert line.startswith("xdetox: error: model 'tuned' (/nonexistent): ")
    assert "model folder not found" in line


def test_duplicate_labels_are_refused(capsys):
    assert main(["compare", "--model", "toy", "--model", "toy"]) == 2
    assert "label 'toy' given twice" in capsys.readouterr().err


@pytest.mark.slow
def test_the_command_prints_its_address_serves_the_page_and_stops_on_ctrl_c(tmp_path):
    # stderr goes to a file, not a pipe nobody reads (a long start could fill it). SIGINT is
    # ignored in the child the way a background job of a non-interactive shell gets it (and as
    # this test process may pass it on): the server must still stop on Ctrl-C.
    log = (tmp_path / "stderr.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "xdetox", "compare", "--model", "base=toy", "--port", "0"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )
    try:
        ready, _, _ = select.select([process.stdout], [], [], 180)
        line = process.stdout.readline() if ready else ""
        found = re.fullmatch(
            r"xdetox compare: serving 1 model at (http://127\.0\.0\.1:(\d+)/) \(Ctrl-C stops\)\n",
            line,
        )
        assert found, (line, process.poll())
        url = found.group(1)
        status, page = request(url)
        assert status == 200 and "<title>xdetox compare</title>" in page
        assert [m["label"] for m in request(url + "api/info")[1]["models"]] == ["base"]
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=60) == 0, (tmp_path / "stderr.log").read_text()[-2000:]
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stdout.close()
        log.close()


# ------------------------------------------------------------------------------ the browser
@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="needs playwright (the dev extra; `make test` installs it)"
    )
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(chromium).is_file():
        pytest.skip("needs Debian's chromium (`make test` installs it: apt-get install chromium)")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium)
        yield launched
        launched.close()


# Per model column: how many continuations, and each one's text and TOXICITY badge.
COLUMNS = """() => [...document.querySelectorAll('#columns section.model')].map((column) => ({
  label: column.querySelector('h2').textContent,
  samples: [...column.querySelectorAll('li.sample')].map((li) => ({
    text: li.querySelector('.text').textContent,
    toxicity: li.querySelector('.score[data-attribute="TOXICITY"] b').textContent,
    marks: [...li.querySelectorAll('mark')].map((m) => m.textContent),
  })),
}))"""


def columns_filled(k: int) -> str:
    return f"""() => {{
      const columns = [...document.querySelectorAll('#columns section.model')];
      return columns.length === 2 && columns.every((c) =>
        c.querySelectorAll('li.sample .score[data-attribute="TOXICITY"]').length === {k});
    }}"""


@pytest.mark.slow
def test_the_page_in_a_browser_fills_both_columns(browser, server):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    outside: list[str] = []

    def route(handle) -> None:
        url = handle.request.url
        if url.startswith(server.url):
            handle.continue_()
        else:
            outside.append(url)
            handle.abort()

    page.route("**/*", route)
    try:
        page.goto(server.url, wait_until="load")
        page.wait_for_selector("form[data-ready=true]", timeout=30_000)
        assert page.eval_on_selector_all("#columns h2", "hs => hs.map(h => h.textContent)") == [
            "base",
            "tuned",
        ]
        # An example fills the prompt box; then the person types their own.
        page.select_option("#language", "en")
        page.select_option("#example", index=1)
        assert page.input_value("#prompt") != ""
        page.fill("#prompt", TYPED)
        page.fill("#k", "2")
        page.click("#generate")
        page.wait_for_function(columns_filled(2), timeout=60_000)
        columns = page.evaluate(COLUMNS)
        assert [c["label"] for c in columns] == ["base", "tuned"]
        for column in columns:
            assert len(column["samples"]) == 2
            for sample in column["samples"]:
                assert sample["text"].startswith(TYPED)
                assert re.fullmatch(r"\d\.\d{3}", sample["toxicity"]), sample
        assert page.text_content("#error") == ""

        # Japanese has no toy lexicon: the score is n/a with its reason, not a number.
        page.select_option("#language", "ja")
        page.fill("#k", "1")
        page.click("#generate")
        page.wait_for_function(columns_filled(1), timeout=60_000)
        toxicity = [s["toxicity"] for c in page.evaluate(COLUMNS) for s in c["samples"]]
        assert toxicity == ["n/a (no lexicon for language 'ja')"] * 2

        # A request the server refuses shows its message; the columns keep their last answer.
        page.fill("#prompt", "")
        page.click("#generate")
        page.wait_for_selector("#error.shown", timeout=30_000)
        assert "prompt: empty" in page.text_content("#error")
        assert outside == [], "the page asked for something outside its server"
    finally:
        page.close()
