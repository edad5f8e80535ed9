"""One generation record (the generate stage's output fields) for scorer tests."""


def generation_record(i: int, text: str, language: str = "en") -> dict:
    return {
        "model": "base",
        "prompt_id": f"{language}-{i:04d}",
        "language": language,
        "prompt": "He said that he",
        "sample_index": i,
        "text": text,
        "n_tokens": 5,
        "finish_reason": "stop",
    }
