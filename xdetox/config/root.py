"""The whole configuration: one section per concern."""

from __future__ import annotations

from pydantic import Field

from xdetox.config.base import _Strict
from xdetox.config.cluster import ClusterConfig
from xdetox.config.data import DataConfig, ModelConfig
from xdetox.config.evaluation import EvaluationConfig
from xdetox.config.generation import GenerationConfig
from xdetox.config.interpret import InterpretConfig
from xdetox.config.metrics import MetricsConfig
from xdetox.config.rl import RLConfig
from xdetox.config.scoring import ScoringConfig
from xdetox.config.training import TrainingConfig


class Config(_Strict):
    name: str = Field("xdetox", description="the run's name (run folder, report title)")
    model: ModelConfig = Field(default_factory=ModelConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    generation: GenerationConfig = Field(default_factory=GenerationConfig)
    scoring: ScoringConfig = Field(default_factory=ScoringConfig)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    # Online RL (training.method ppo | rloo | grpo) and the interpretability stages.
    rl: RLConfig = Field(default_factory=RLConfig)
    interpret: InterpretConfig = Field(default_factory=InterpretConfig)
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)
    cluster: ClusterConfig = Field(default_factory=ClusterConfig)
