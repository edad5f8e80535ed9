"""KFP component: score generations for toxicity with the configured scorer."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Output

from xdetox.components.images import stage_image
from xdetox.config import ScoringConfig
from xdetox.config.interface import documented


@dsl.component(base_image=stage_image("score"), install_kfp_package=False)
@documented(
    generations="generation JSON lines",
    scoring=ScoringConfig,
    scores="score JSON lines: the generation fields plus scorer and scores",
)
def score(generations: Input[Dataset], scoring: dict, scores: Output[Dataset]):
    """Write score JSON lines: the generation fields plus ``scorer`` and ``scores``."""
    from xdetox.components.score.score_file import score_generations
    from xdetox.config import ScoringConfig, validate_section

    config = validate_section(ScoringConfig, scoring, "pipeline parameter 'scoring'")
    summary = score_generations(generations.path, scores.path, config)
    scores.metadata.update(
        {
            "xdetox_kind": "scores",
            "language": generations.metadata.get("language", ""),
            "model": generations.metadata.get("model", ""),
            **{k: v for k, v in summary.items() if isinstance(v, str | int | float)},
        }
    )


@dsl.component(base_image=stage_image("score"), install_kfp_package=False)
@documented(
    scores="the next model's score JSON lines",
    earlier="the models before it: a gathered folder, or the first model's score file",
    gathered="a folder of every model's score file so far, in order (000.jsonl, ...)",
)
def gather_scores(
    scores: Input[Dataset], gathered: Output[Dataset], earlier: Input[Dataset] = None
):
    """Add one model's scores to the language's folder of scores (one task per extra model:
    the metrics and examples tasks then read every model's scores at once)."""
    from xdetox.components.score.gather import gather

    files = gather(gathered.path, scores.path, None if earlier is None else earlier.path)
    gathered.metadata.update(
        {"xdetox_kind": "gathered_scores", "n_files": len(files),
         "language": scores.metadata.get("language", "")}
    )  # fmt: skip
