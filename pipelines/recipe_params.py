"""What a recipe gives every pipeline besides its graph: dict parameters and caching.

Each pipeline takes the recipe's values as parameter defaults (KFP reads them from the pipeline
function's signature), so the same compiled version serves runs with other ``--param`` values.
"""

from __future__ import annotations

from xdetox.components.prepare_prompts.languages import normalise_language
from xdetox.config import SELF_PAIRS, Config, to_params
from xdetox.errors import ConfigError

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
    if is_external(config.data.self_pairs.scorer or config.scoring.scorer):
        stages.add("self_pairs")  # it scores its samples
    return stages


def data_params(config: Config) -> dict:
    """The ``data`` dict parameter: sources and languages travel as top-level parameters."""
    params = to_params(config.data)
    for key in ("preference", "prompts", "languages"):
        params.pop(key)
    return params


def is_self_pairs(preference: str | None) -> bool:
    """Whether ``data.preference`` asks for pairs made from the base model's own samples."""
    return preference == SELF_PAIRS


def check_self_pairs(config: Config) -> None:
    """Refuse at compile time a self-pairs recipe whose prompts hold none of its language.

    Without ``data.self_pairs.prompts`` the pairs are sampled from the run's prepared prompts,
    which hold only ``data.languages``; the run would otherwise fail hours later.
    """
    settings = config.data.self_pairs
    if not is_self_pairs(config.data.preference) or settings.prompts:
        return
    try:
        language = normalise_language(settings.language)
        languages = {normalise_language(code) for code in config.data.languages}
    except ValueError as exc:
        raise ConfigError(f"data.self_pairs.language: {exc}") from None
    if language not in languages:
        raise ConfigError(
            f"data.self_pairs.language: {settings.language!r} is not in data.languages, so the "
            "prepared prompts hold none; add it there or set data.self_pairs.prompts"
        )
