"""Which toxicity scorer runs, and on which attributes."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from xdetox.config.base import _Strict


class ScoringConfig(_Strict):
    scorer: Literal["offline"] = "offline"
    attributes: list[str] = Field(
        default_factory=lambda: [
            "TOXICITY",
            "SEVERE_TOXICITY",
            "IDENTITY_ATTACK",
            "INSULT",
            "PROFANITY",
            "THREAT",
        ]
    )
