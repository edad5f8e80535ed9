"""The Perspective API scorer against a local server that speaks the real protocol.

The server (tests/fakes/perspective_server.py) serves the discovery document, ``comments:analyze``
and the ``/batch`` endpoint, scores each text with a hash of the text (so a fabricated score or
one attached to the wrong text is visible), and misbehaves on purpose: a quota answered with 429,
injected 429s and 5xx, slow replies past the client's timeout, whole-batch 503s, and languages
that some attributes do not support.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "fakes"))

from perspective_server import (
    ANALYZE_PATH,
    Behaviour,
    PerspectiveServer,
    expected_score,
    language_error,
    rate_limit_error,
    text_hash,
)

from xdetox.components.score.perspective import PerspectiveError, PerspectiveScorer
from xdetox.components.score.perspective_protocol import (
    api_language,
    classify_error,
    parse_scores,
    redact,
    request_body,
)
from xdetox.components.score.rate_limit import RateLimiter, backoff_delay
from xdetox.components.score.score_cache import ScoreCache, cache_key
from xdetox.components.score.score_file import score_generations
from xdetox.components.score.scorers import get_scorer
from xdetox.config import ScoringConfig
from xdetox.errors import ConfigError
from xdetox.records import ATTRIBUTES

REPO = Path(__file__).resolve().parent.parent
KEY = "AIzaTESTKEY-0123456789-secret"


@pytest.fixture
def api_key(monkeypatch):
    monkeypatch.setenv("PERSPECTIVE_API_KEY", KEY)
    monkeypatch.delenv("PERSPECTIVE_DISCOVERY_URL", raising=False)
    return KEY


def generation(index: int, text: str, language: str, model: str = "base") -> dict:
    return {
        "model": model,
        "prompt_id": f"p{index // 2}",
        "language": language,
        "prompt": "The prompt",
        "sample_index": index % 2,
        "text": text,
        "n_tokens": 3,
        "finish_reason": "length",
    }


def write_generations(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    return path


def read_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def max_in_window(times: list[float], window: float) -> int:
    """The most events in any half-open interval of ``window`` seconds."""
    times = sorted(times)
    best, start = 0, 0
    for end, t in enumerate(times):
        while times[start] <= t - window:
            start += 1
        best = max(best, end - start + 1)
    return best


# ------------------------------------------------------------------------------ protocol
def test_language_mapping_and_request_body():
    assert api_language("zh-hans") == "zh"
    assert api_language("zh_Hans") == "zh"
    assert api_language("EN") == "en"
    body = request_body("hi", "en", ["TOXICITY", "THREAT"])
    assert body == {
        "comment": {"text": "hi"},
        "languages": ["en"],
        "requestedAttributes": {"TOXICITY": {}, "THREAT": {}},
        "doNotStore": True,
    }


def test_parse_scores_never_fills_in_a_missing_score():
    response = {
        "attributeScores": {
            "TOXICITY": {"summaryScore": {"value": 0.25}},
            "INSULT": {"summaryScore": {"value": 1.5}},
            "THREAT": {"summaryScore": {}},
        }
    }
    scores, errors = parse_scores(response, ["TOXICITY", "INSULT", "THREAT", "PROFANITY"])
    assert scores == {"TOXICITY": 0.25, "INSULT": None, "THREAT": None, "PROFANITY": None}
    assert set(errors) == {"INSULT", "THREAT", "PROFANITY"}
    assert "not a probability" in errors["INSULT"]


def test_classify_error_bodies_as_the_api_sends_them():
    body = json.dumps(language_error("SEVERE_TOXICITY", "ar"))
    error = classify_error(400, body)
    assert (error.kind, error.attribute) == ("language", "SEVERE_TOXICITY")
    # Older answers name the attribute only in the message.
    bare = {
        "error": {
            "code": 400,
            "message": "Attribute THREAT does not support request languages: th",
            "status": "INVALID_ARGUMENT",
            "details": [{"errorType": "LANGUAGE_NOT_SUPPORTED_BY_ATTRIBUTE"}],
        }
    }
    assert classify_error(400, json.dumps(bare)).attribute == "THREAT"
    limited = classify_error(429, json.dumps(rate_limit_error()), {"retry-after": "3"})
    assert (limited.kind, limited.retry_after) == ("retry", 3.0)
    assert "RATE_LIMIT_EXCEEDED" in limited.message
    assert classify_error(503, b"<html>busy</html>").kind == "retry"
    too_long = {
        "error": {
            "code": 400,
            "message": "Comment text too long.",
            "details": [{"errorType": "COMMENT_TOO_LONG"}],
        }
    }
    assert classify_error(400, json.dumps(too_long)).kind == "final"
    invalid_key = {
        "error": {
            "code": 400,
            "message": "API key not valid. Please pass a valid API key.",
            "details": [{"reason": "API_KEY_INVALID"}],
        }
    }
    assert classify_error(400, json.dumps(invalid_key)).kind == "fatal"
    assert classify_error(403, "{}").kind == "fatal"


def test_redact_removes_the_key_everywhere():
    text = f"POST https://x/v1alpha1/comments:analyze?key={KEY}&alt=json returned {KEY!r}"
    assert KEY not in redact(text, KEY)
    assert "key=<redacted>&alt=json" in redact(text, None)


# ------------------------------------------------------------------------------ pacing
class FakeClock:
    """Seconds that pass only when someone sleeps: rates are checked exactly, not timed."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_rate_limiter_holds_rate_and_burst():
    clock = FakeClock()
    limiter = RateLimiter(5.0, burst=5, clock=clock, sleep=clock.sleep)
    stamps = []
    for _ in range(20):  # batches of 5 items
        limiter.acquire(5)
        stamps.extend([clock.now] * 5)
    # 100 items at 5/s with a bucket of 5 that starts full: the last batch leaves at 19 s.
    assert clock.now == pytest.approx(19.0)
    assert max_in_window(stamps, 1.0) <= 5 + 5
    assert max_in_window(stamps, 4.0) <= 5 * 4 + 5
    with pytest.raises(ValueError):
        RateLimiter(0)


def test_rate_limiter_oversized_requests_and_rate_changes():
    clock = FakeClock()
    limiter = RateLimiter(2.0, burst=4, clock=clock, sleep=clock.sleep)
    assert limiter.acquire(10) == 0.0  # more than the bucket: taken now, a debt of 6 permits
    assert limiter.acquire(1) == pytest.approx(3.5)  # 7 permits short at 2/s
    clock.now += 1.0  # 2 permits earned at the old rate are kept...
    limiter.set_rate(4.0)
    assert limiter.acquire(3) == pytest.approx(0.25)  # ...the third comes at the new rate
    assert limiter.acquire(0) == 0.0
    assert limiter.waited == pytest.approx(3.75)
    with pytest.raises(ValueError):
        limiter.set_rate(0)


def test_backoff_grows_exponentially_with_jitter_and_a_ceiling():
    import random

    rng = random.Random(0)
    for attempt, ceiling in ((1, 1.0), (2, 2.0), (3, 4.0), (6, 10.0), (20, 10.0)):
        draws = [backoff_delay(attempt, 1.0, 10.0, rng=rng) for _ in range(200)]
        assert all(ceiling / 2 <= d <= ceiling for d in draws)
        assert len({round(d, 6) for d in draws}) > 100  # jittered, not constant
    assert backoff_delay(0, 1.0, 10.0) == 0.0


# ------------------------------------------------------------------------------ cache
def test_cache_key_and_persistence(tmp_path):
    key = cache_key("text", "en", ["THREAT", "TOXICITY"])
    assert key == cache_key("text", "en", ["TOXICITY", "THREAT"])  # attribute order irrelevant
    assert key != cache_key("text", "de", ["TOXICITY", "THREAT"])
    assert key != cache_key("text ", "en", ["TOXICITY", "THREAT"])
    cache = ScoreCache(tmp_path)
    cache.put_many(
        [(key, "en", ["TOXICITY"], {"TOXICITY": 0.5, "THREAT": None}, {"THREAT": "unsupported"})]
    )
    cache.close()
    again = ScoreCache(tmp_path)  # a new process would open it the same way
    assert again.get_many([key, "absent"]) == {
        key: ({"THREAT": None, "TOXICITY": 0.5}, {"THREAT": "unsupported"})
    }
    assert len(again) == 1


def test_building_the_scorer_contacts_nothing_and_needs_no_key(monkeypatch, tmp_path):
    monkeypatch.delenv("PERSPECTIVE_API_KEY", raising=False)
    config = ScoringConfig(
        scorer="perspective", discovery_url="http://127.0.0.1:9/none", cache_dir=str(tmp_path / "c")
    )
    scorer = get_scorer(config)
    assert "Perspective API" in scorer.name and scorer.id == "perspective-v1alpha1"
    assert not (tmp_path / "c").exists()
    # Empty texts are answered without the API, so they need no key either...
    assert scorer.score_batch([" "], ["en"]) == [dict.fromkeys(ATTRIBUTES)]
    # ...but a text to send does.
    with pytest.raises(ConfigError, match="PERSPECTIVE_API_KEY is not set"):
        scorer.score_batch(["hello"], ["en"])
    scorer.close()


# ------------------------------------------------------------------------------ the hostile server
def _hostile_behaviour() -> Behaviour:
    return Behaviour(
        key=KEY,
        quota_qps=40.0,
        quota_burst=20.0,
        inject_429=lambda text, attempt: text_hash(text) % 7 == 0 and attempt <= 2,
        inject_5xx=lambda text, attempt: text_hash(text) % 5 == 1 and attempt == 1,
        slow=lambda text, attempt: text_hash(text) % 17 == 3 and attempt == 1,
        slow_seconds=1.0,
        batch_503_every=9,
        unsupported={"ar": frozenset({"SEVERE_TOXICITY", "THREAT"}), "de": frozenset({"THREAT"})},
    )


def _hostile_records() -> list[dict]:
    languages = ["en", "de", "ar", "zh-hans", "fr", "xx"]
    records = []
    for i in range(150):
        language = languages[i % len(languages)]
        text = f"continuation {i} in {language}"
        if i % 25 == 7:
            text = "  "  # empty: never sent
        if i % 30 == 4:
            text = "the same words again"  # repeated (French) across records and models
        records.append(generation(i, text, language, model="base" if i < 75 else "dpo"))
    records.append(generation(150, "x" * 20481, "en"))  # over the API's size limit
    return records


# e2e: the whole score stage against real-time slow replies and timeouts.
@pytest.mark.e2e
def test_hostile_server_no_score_lost_duplicated_fabricated_or_misplaced(api_key, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    records = _hostile_records()
    source = write_generations(tmp_path / "gen.jsonl", records)
    out = tmp_path / "scores.jsonl"
    qps, batch = 40.0, 10
    config = ScoringConfig(
        scorer="perspective",
        qps=qps,
        api_batch_size=batch,
        cache_dir=str(tmp_path / "cache"),
        max_retries=6,
        timeout=0.5,
        retry_initial_delay=0.05,
        retry_max_delay=0.4,
    )
    with PerspectiveServer(_hostile_behaviour()) as server:
        config = config.model_copy(update={"discovery_url": server.discovery_url})
        summary = score_generations(source, out, config, progress=False)
        state = server.state

    scored = read_lines(out)
    assert len(scored) == len(records)  # nothing lost, nothing duplicated, same order
    unsupported = _hostile_behaviour().unsupported
    for record, result in zip(records, scored, strict=True):
        assert {k: result[k] for k in record} == record
        assert result["scorer"] == "perspective-v1alpha1"
        text, language = record["text"], record["language"]
        for attribute in ATTRIBUTES:
            value = result["scores"][attribute]
            if value is not None:
                # Every number is the server's number for this very text: none made up.
                assert value == expected_score(text, attribute)
                continue
            reason = result["score_errors"][attribute]
            if not text.strip():
                assert "empty text" in reason
            elif len(text) > 20480:
                assert "COMMENT_TOO_LONG" in reason
            else:
                assert "LANGUAGE_NOT_SUPPORTED_BY_ATTRIBUTE" in reason
                assert language == "xx" or attribute in unsupported[language]
        if text.strip() and language != "xx" and len(text) <= 20480:
            # Every text the API can score got every score its language allows.
            allowed = set(ATTRIBUTES) - unsupported.get(language, frozenset())
            assert {a for a, v in result["scores"].items() if v is not None} == allowed

    # The misbehaviour happened and was survived, not avoided.
    stats = summary["scorer_stats"]
    assert stats["rate_limited"] > 0 and stats["server_errors"] > 0 and stats["timeouts"] > 0
    assert stats.get("failed", 0) == 0
    statuses = {item.status for item in state.items}
    assert {200, 400, 429, 503} <= statuses
    # zh-hans went out as "zh"; empty texts never went out; the repeated text went once.
    assert "zh-hans" not in {item.language for item in state.items}
    assert all(item.text.strip() for item in state.items)
    assert state.answered["the same words again"] == 1
    # Rate: every item of every request counts; the client holds qps (bucket of one batch).
    times = [item.time for item in state.items]
    assert max_in_window(times, 1.0) <= qps * 1.0 + batch + 1
    assert max_in_window(times, 3.0) <= qps * 3.0 + batch + 1
    # The key went to the server, and nowhere else.
    assert {item.key for item in state.items} == {KEY}
    assert KEY not in caplog.text
    assert KEY not in json.dumps(summary) and KEY not in out.read_text()


def test_achieved_rate_matches_the_configured_qps(api_key, tmp_path):
    """60 items at 20 qps in batches of 5, on a fake clock shared by client and server: the
    first batch leaves at once (the bucket starts full), then one batch every 5/20 s."""
    qps, batch, n = 20.0, 5, 60
    texts = [f"rate text {i}" for i in range(n)]
    clock = FakeClock()
    with PerspectiveServer(Behaviour(key=KEY, clock=clock)) as server:
        scorer = PerspectiveScorer(
            ATTRIBUTES[:1],
            qps=qps,
            api_batch_size=batch,
            discovery_url=server.discovery_url,
            cache_dir=tmp_path,
            clock=clock,
            sleep=clock.sleep,
        )
        results = scorer.score_batch(texts, ["en"] * n)
        scorer.close()
        times = sorted(item.time for item in server.state.items)
        requests = list(server.state.http_requests)
    assert [r["TOXICITY"] for r in results] == [expected_score(t, "TOXICITY") for t in texts]
    assert {size for _, _, size in requests} == {batch}  # batch requests of api_batch_size items
    sent = [t for t, _, _ in requests]
    assert sent == pytest.approx([k * batch / qps for k in range(n // batch)])
    assert (n - batch) / (times[-1] - times[0]) == pytest.approx(qps)
    assert max_in_window(times, 1.0) == qps  # the bucket allows qps + batch; pacing gives qps
    assert clock.now == pytest.approx((n - batch) / qps)  # no second was slept in vain


def test_plain_requests_when_batching_is_off(api_key, tmp_path):
    with PerspectiveServer(Behaviour(key=KEY)) as server:
        scorer = PerspectiveScorer(
            ["TOXICITY", "INSULT"],
            qps=50,
            api_batch_size=1,
            discovery_url=server.discovery_url,
            cache_dir=tmp_path,
        )
        results = scorer.score_batch(["a", "b", "c"], ["en", "de", "fr"])
        scorer.close()
        paths = {path for _, path, _ in server.state.http_requests}
    assert paths == {ANALYZE_PATH}
    assert results[1] == {
        "TOXICITY": expected_score("b", "TOXICITY"),
        "INSULT": expected_score("b", "INSULT"),
    }


def test_cache_serves_reruns_and_other_models_without_the_api(api_key, tmp_path, monkeypatch):
    texts = ["one", "two", "two", "three"]
    with PerspectiveServer(Behaviour(key=KEY)) as server:
        first = PerspectiveScorer(
            ATTRIBUTES, qps=50, discovery_url=server.discovery_url, cache_dir=tmp_path
        )
        before = first.score_batch(texts, ["en"] * 4)
        first.close()
        assert sum(server.state.answered.values()) == 3  # "two" asked once
        # A second run (another model, same continuations) needs neither server nor key.
        monkeypatch.delenv("PERSPECTIVE_API_KEY")
        second = PerspectiveScorer(
            ATTRIBUTES, qps=50, discovery_url="http://127.0.0.1:9/x", cache_dir=tmp_path
        )
        assert second.score_batch(texts, ["en"] * 4) == before
        assert second.stats["cache_hits"] == 4
        second.close()
        assert len(server.state.items) == 3


def test_retries_run_out_into_a_reasoned_null_that_is_not_cached(api_key, tmp_path):
    always_down = Behaviour(key=KEY, inject_5xx=lambda text, attempt: text == "doomed")
    with PerspectiveServer(always_down) as server:
        scorer = PerspectiveScorer(
            ["TOXICITY"],
            qps=50,
            max_retries=2,
            retry_initial_delay=0.01,
            retry_max_delay=0.02,
            discovery_url=server.discovery_url,
            cache_dir=tmp_path,
        )
        [doomed, fine] = scorer.score_items(["doomed", "fine"], ["en", "en"])
        assert doomed.scores == {"TOXICITY": None}
        assert "failed after 3 attempts" in doomed.errors["TOXICITY"]
        assert "503" in doomed.errors["TOXICITY"]
        assert fine.scores == {"TOXICITY": expected_score("fine", "TOXICITY")}
        assert server.state.attempts["doomed"] == 3
        # A transient failure is not an answer: the next call asks again.
        scorer.score_items(["doomed"], ["en"])
        assert server.state.attempts["doomed"] == 6
        scorer.close()


def test_wrong_key_stops_the_run_without_showing_the_key(monkeypatch, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("PERSPECTIVE_API_KEY", KEY)
    with PerspectiveServer(Behaviour(key="the-right-key")) as server:
        monkeypatch.setenv("PERSPECTIVE_DISCOVERY_URL", server.discovery_url)
        scorer = PerspectiveScorer(["TOXICITY"], qps=50, cache_dir=tmp_path)
        with pytest.raises(PerspectiveError) as info:
            scorer.score_batch(["hello"], ["en"])
        scorer.close()
    assert "API_KEY_INVALID" in str(info.value)
    assert KEY not in str(info.value) and KEY not in caplog.text
    assert "key=<redacted>" in caplog.text  # the client library's own log line, redacted


def test_unreachable_discovery_url_is_one_line_without_the_key(api_key, tmp_path):
    scorer = PerspectiveScorer(
        ["TOXICITY"],
        discovery_url=f"http://127.0.0.1:9/d?key={KEY}",
        cache_dir=tmp_path,
        max_retries=0,
    )
    with pytest.raises(PerspectiveError) as info:
        scorer.score_batch(["hello"], ["en"])
    assert "cannot read the Perspective discovery document" in str(info.value)
    assert KEY not in str(info.value) and "\n" not in str(info.value)


# ------------------------------------------------------------------------------ kill and rerun
def _score_command(generations: Path, output: Path, cache: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "xdetox.cli.main",
        "score",
        "--debug",
        "--generations",
        str(generations),
        "--output",
        str(output),
        "--set",
        "scoring.scorer=perspective",
        "--set",
        "scoring.qps=50",
        "--set",
        "scoring.api_batch_size=5",
        "--set",
        f"scoring.cache_dir={cache}",
        "--set",
        "scoring.retry_initial_delay=0.05",
    ]


@pytest.mark.e2e
def test_killed_run_reruns_to_the_same_result_without_asking_twice(tmp_path):
    records = [generation(i, f"killable text {i}", ["en", "de"][i % 2]) for i in range(60)]
    records[13]["text"] = records[3]["text"]  # a repeat: asked once across both runs
    source = write_generations(tmp_path / "gen.jsonl", records)
    out, cache = tmp_path / "scores.jsonl", tmp_path / "cache"
    behaviour = Behaviour(key=KEY, stall_after=25, unsupported={"de": frozenset({"THREAT"})})
    with PerspectiveServer(behaviour) as server:
        env = {
            **os.environ,
            "PERSPECTIVE_API_KEY": KEY,
            "PERSPECTIVE_DISCOVERY_URL": server.discovery_url,
        }
        command = _score_command(source, out, cache)
        first = subprocess.Popen(
            command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        try:
            assert server.state.stalled.wait(timeout=40), "the scorer never reached the stall"
        finally:
            first.send_signal(signal.SIGKILL)
            _, first_err = first.communicate(timeout=30)
        assert first.returncode == -signal.SIGKILL
        answered_before = dict(server.state.answered)
        assert sum(answered_before.values()) >= 25
        n_items_before = len(server.state.items)
        assert not out.exists()  # the output is written atomically: nothing half-done

        behaviour.stall_after = None
        server.state.released.set()
        second = subprocess.run(command, cwd=REPO, env=env, capture_output=True, timeout=60)
        assert second.returncode == 0, second.stderr.decode()[-2000:]
        answered = server.state.answered
        rerun_texts = {item.text for item in server.state.items[n_items_before:]}

    distinct = {r["text"] for r in records}
    assert set(answered) == distinct
    assert max(answered.values()) == 1  # no text answered twice, across the kill
    assert not rerun_texts & set(answered_before)  # the rerun asked only for the rest
    scored = read_lines(out)
    assert len(scored) == len(records)
    for record, result in zip(records, scored, strict=True):
        for attribute in ATTRIBUTES:
            value = result["scores"][attribute]
            if record["language"] == "de" and attribute == "THREAT":
                assert value is None
            else:
                assert value == expected_score(record["text"], attribute)
    for stream in (first_err, second.stdout, second.stderr):
        assert KEY.encode() not in stream
    assert b"key=<redacted>" in second.stderr  # --debug logs the request URLs, redacted


def test_a_qps_above_the_real_quota_converges_instead_of_failing(api_key, tmp_path):
    """Configured 40/s against a 10/s quota: 429s halve the pace; nothing is lost. The server's
    quota and the client's pace share one fake clock, so the run is the same every time."""
    texts = [f"over quota {i}" for i in range(50)]
    clock = FakeClock()
    quota = Behaviour(key=KEY, quota_qps=10.0, quota_burst=10.0, clock=clock)
    with PerspectiveServer(quota) as server:
        scorer = PerspectiveScorer(
            ["TOXICITY"],
            qps=40,
            api_batch_size=10,
            max_retries=8,
            retry_initial_delay=0.1,
            retry_max_delay=1.0,
            discovery_url=server.discovery_url,
            cache_dir=tmp_path,
            seed=0,
            clock=clock,
            sleep=clock.sleep,
        )
        results = scorer.score_batch(texts, ["en"] * len(texts))
        stats = dict(scorer.stats)
        scorer.close()
        statuses = [item.status for item in server.state.items]
    assert [r["TOXICITY"] for r in results] == [expected_score(t, "TOXICITY") for t in texts]
    assert stats["lowest_rate"] <= 12.0  # the pace came down to about the quota
    # Most requests got through: refusals did not eat the quota.
    assert statuses.count(429) < statuses.count(200)
