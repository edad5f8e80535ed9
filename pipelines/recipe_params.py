"""What a recipe gives every pipeline besides its graph: dict parameters and caching.

Each pipeline takes the recipe's values as parameter defaults (KFP reads them from the pipeline
function's signature), so the same compiled version serves runs with other ``--param`` values.
"""

from __future__ import annotations

from xdetox.config import Config, to_params

# Scorers that call an external service can answer differently over time (and the Perspective
# API stops serving after 2026): their results are not cached. Everything else is deterministic
# given its inputs (generation is seeded per sample), so KFP may reuse it.
EXTERNAL_SCORERS = frozenset({"perspective"})


def is_external(scorer: str | None) -> bool:
    """Whether ``scorer`` calls a service whose answers may change between runs."""
    return scorer in EXTERNAL_SCORERS


def uncached_stages(config: Config) -> set[str]:
    """The stages whose results KFP must not reuse for this recipe."""
    stages: set[str] = set()
    if is_external(config.scoring.scorer) or is_external(config.scoring.agreement_with):
        stages.add("score")
    if is_external(config.scoring.scorer):
        stages.add("intervene")  # the sweep scores with the primary scorer
    return stages


def data_params(config: Config) -> dict:
    """The ``data`` dict parameter: sources and languages travel as top-level parameters."""
    params = to_params(config.data)
    for key in ("preference", "prompts", "languages"):
        params.pop(key)
    return params
