"""Language codes as the pipeline spells them: lower case, hyphen-separated (``zh-hans``).

RTP-LX names its files ``RTP_LX_ZH-Hans.json`` and its ``Locale`` field ``ZH-Hans``; users type
``zh_hans`` or ``zh-Hans``; XG's list says ``zh-hans``. One spelling everywhere lets a config's
language list match the data whatever the release.
"""

from __future__ import annotations

import re

_VALID = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")


def normalise_language(code: str) -> str:
    """``ZH-Hans``, ``zh_hans``, `` zh-Hans `` → ``zh-hans``; ``EN`` → ``en``.

    Raises ``ValueError`` for something that is not a language tag (callers turn it into a
    DataError or ConfigError that names where the code came from).
    """
    if not isinstance(code, str):
        raise ValueError(f"language must be a string, got {type(code).__name__}")
    norm = code.strip().lower().replace("_", "-")
    if not _VALID.match(norm):
        raise ValueError(f"not a language code: {code!r}")
    return norm
