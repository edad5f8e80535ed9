"""The report as a person sees it: rendered by headless Chromium at 1280 px.

A report is built from synthetic scored generations (three languages, scored by the real offline
scorer, metrics with the paired bootstrap, no pipeline run) and opened in Debian's ``chromium``
driven by playwright (``executable_path``: playwright's own browser download is never used).
Checked in the page itself: every image decodes (``naturalWidth > 0``), nothing makes the page
wider than the window (``document.documentElement.scrollWidth <= 1280``), the examples section is
there with base and tuned continuations and marked words, and no request leaves the file (the
page works offline). Two controls show that the checks can fail: the same page with the tables'
scroll boxes switched off overflows, and a corrupted image is reported.

Why playwright rather than ``chromium --headless --dump-dom``: the measurements need JavaScript
run after layout at a set window size, and a failing check should say which element overflows;
with --dump-dom the probe would have to be injected into the page and its answer parsed back out
of the dumped DOM.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from xdetox.components.metrics.per_language import compute_metrics, write_metrics_csv
from xdetox.components.report.aggregate import aggregate_metrics
from xdetox.components.report.examples import build_examples
from xdetox.components.report.html_report import render_report
from xdetox.components.score.lexicon_scorer import LexiconScorer
from xdetox.config import MetricsConfig

sync_api = pytest.importorskip(
    "playwright.sync_api", reason="needs playwright (the dev extra; `make test` installs it)"
)
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
if not Path(CHROMIUM).is_file():
    pytest.skip(
        "needs Debian's chromium (`make test` installs it: apt-get install -y chromium)",
        allow_module_level=True,
    )

pytestmark = pytest.mark.slow
WIDTH = 1280

# Per language: (base texts, tuned texts) cycled over the prompts' samples. The base model says
# listed insults, the tuned one mostly does not; a long unbroken "word" tests wrapping.
TEXTS = {
    "en": (["you idiot, shut up", "what a stupid loser", "fine, thanks"], ["fine, thanks",
           "a calm reply", "you idiot"]),
    "de": (["du Idiot", "so ein Trottel", "danke"], ["danke schön", "ruhig bleiben", "gut"]),
    "fr": (["espèce d'idiot", "quel crétin", "merci"], ["merci bien", "très calme", "bonjour"]),
}  # fmt: skip
UNBROKEN = "x" * 400


def scored_records(language: str, model: str, texts: list[str]) -> list[dict]:
    scorer = LexiconScorer()
    records = []
    for prompt in range(8):
        for sample in range(3):
            text = texts[(prompt + sample) % len(texts)]
            if (language, model, prompt, sample) == ("en", "base", 0, 0):
                text += " " + UNBROKEN
            records.append({
                "model": model, "prompt_id": f"{language}-{prompt}", "language": language,
                "prompt": f"Prompt {prompt} in {language}:", "sample_index": sample,
                "text": text, "scorer": scorer.id,
            })  # fmt: skip
    scores = scorer.score_batch([r["text"] for r in records], [language] * len(records))
    return [{**r, "scores": s} for r, s in zip(records, scores, strict=True)]


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("browser")
    config = MetricsConfig(
        perplexity=False, diversity_tokenizer="whitespace", bootstrap_samples=200
    )
    tables, score_files = [], []
    for language, (base, tuned) in TEXTS.items():
        path = root / f"scores_{language}.jsonl"
        records = scored_records(language, "base", base) + scored_records(language, "dpo", tuned)
        path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
        score_files.append(path)
        table = root / f"metrics_{language}.csv"
        write_metrics_csv(compute_metrics([path], config), table)
        tables.append(table)
    out = root / "report.html"
    render_report(
        aggregate_metrics(tables),
        out,
        title="browser check",
        scorer_description=LexiconScorer().name,
        # A long unbroken value, as a gs:// model path is: its table must scroll, not the page.
        run_info={"name": "browser", "base_model": "gs://bucket/" + "m" * 300},
        examples=build_examples(score_files),
    )
    return out


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM)
        yield chromium
        chromium.close()


# Runs in the page once it has loaded: what the assertions need, and the offenders by name.
PROBE = """() => {
  const width = window.innerWidth;
  const name = (e) => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') +
                      (e.className ? '.' + String(e.className).replace(/ /g, '.') : '');
  // Inside a box that clips or scrolls sideways, an element cannot widen the page.
  const boxed = (e) => {
    for (let a = e.parentElement; a && a !== document.body; a = a.parentElement) {
      if (getComputedStyle(a).overflowX !== 'visible') return true;
    }
    return false;
  };
  const overflowing = [...document.body.querySelectorAll('*')]
    .filter((e) => e.getBoundingClientRect().right > width + 0.5 && !boxed(e))
    .map(name);
  const examples = document.querySelector('#examples');
  return {
    innerWidth: width,
    scrollWidth: document.documentElement.scrollWidth,
    overflowing: overflowing.slice(0, 10),
    images: [...document.images].map((i) => ({alt: i.alt, complete: i.complete,
                                               naturalWidth: i.naturalWidth})),
    examples: examples === null ? null : {
      languages: [...examples.querySelectorAll('h3')].map((h) => h.textContent),
      headers: [...examples.querySelectorAll('table.examples thead th')].map((h) => h.textContent),
      rows: examples.querySelectorAll('table.examples tbody tr').length,
      marks: [...examples.querySelectorAll('mark')].map((m) => m.textContent),
      // an examples table wider than its box would need sideways scrolling to be read
      tablesWiderThanBox: [...examples.querySelectorAll('.scroll')]
        .filter((box) => box.scrollWidth > box.clientWidth).length,
    },
  };
}"""


def open_page(browser, html: str, tmp_path: Path) -> tuple[dict, list[str]]:
    """Load ``html`` from a file at 1280 px; the probe's answer and any request that would
    leave the file (answered with an abort, as offline)."""
    path = tmp_path / "page.html"
    path.write_text(html, encoding="utf-8")
    page = browser.new_page(viewport={"width": WIDTH, "height": 900})
    outside: list[str] = []

    def route(request_route) -> None:
        url = request_route.request.url
        if url.startswith(("file:", "data:")):
            request_route.continue_()
        else:
            outside.append(url)
            request_route.abort()

    page.route("**/*", route)
    try:
        page.goto(path.as_uri(), wait_until="load")
        return page.evaluate(PROBE), outside
    finally:
        page.close()


def test_report_renders_at_1280_px(browser, report, tmp_path):
    found, outside = open_page(browser, report.read_text(encoding="utf-8"), tmp_path)
    assert outside == [], "the page asked for something outside itself"
    assert found["innerWidth"] == WIDTH
    assert found["scrollWidth"] <= WIDTH, found["overflowing"]
    assert found["overflowing"] == []
    # Two bar charts (EMT; average toxicity and probability: no perplexity was measured) and
    # the forest plot, every one decoded.
    images = found["images"]
    assert len(images) == 3, images
    assert all(i["complete"] and i["naturalWidth"] > 0 for i in images), images
    assert any(i["alt"].startswith("forest plot") for i in images)
    examples = found["examples"]
    assert examples is not None, "no examples section"
    assert examples["languages"] == ["de", "en", "fr"]
    assert examples["headers"] == ["prompt", "base", "dpo"] * 3  # side by side, per language
    assert examples["rows"] == 3 * 3  # 3 prompts per language
    assert "idiot" in [m.lower() for m in examples["marks"]]
    assert examples["tablesWiderThanBox"] == 0


def test_the_checks_catch_an_overflowing_table_and_a_broken_image(browser, report, tmp_path):
    html = report.read_text(encoding="utf-8")
    # Without the scroll boxes, the wide tables (the base-vs-tuned table, the run table with
    # its long model path) widen the page: the same probe must see it.
    unboxed = html.replace(".scroll { overflow-x: auto;", ".scroll { overflow-x: visible;")
    assert unboxed != html
    found, _ = open_page(browser, unboxed, tmp_path)
    assert found["scrollWidth"] > WIDTH and found["overflowing"]
    # An image whose data does not decode is reported, not passed over.
    broken = re.sub(r"base64,[A-Za-z0-9+/=]+", "base64,AAAA", html, count=1)
    found, _ = open_page(browser, broken, tmp_path)
    widths = [i["naturalWidth"] for i in found["images"]]
    assert widths[0] == 0 and all(w > 0 for w in widths[1:]), widths  # the first one only
