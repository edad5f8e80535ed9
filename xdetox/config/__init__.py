"""Typed configuration: YAML recipes, merged in order, with ``--set key=value`` overrides.

One module per section (``data``, ``training``, ``rl``, ``generation``, ``scoring``, ``metrics``,
``interpret``: hyperparameters; ``cluster``: infrastructure), the root model in ``root`` and
loading in ``loader``. Everything is re-exported here: ``from xdetox.config import Config``.

Each section is a stage's one typed interface: ``interface`` derives the KFP components'
parameter docs and the commands' flags from its fields, and ``trl_options`` passes it to TRL's
config classes by field name.
"""

from xdetox.config.base import _Strict
from xdetox.config.cluster import STAGES, ClusterConfig, ResourceConfig
from xdetox.config.data import (
    SELF_PAIRS,
    XG_LANGUAGES,
    DataConfig,
    LengthFilter,
    ModelConfig,
    SelfPairsConfig,
)
from xdetox.config.evaluation import EvaluationConfig
from xdetox.config.generation import PROTOCOLS, GenerationConfig, VLLMConfig
from xdetox.config.interpret import (
    ActivationConfig,
    AlignmentConfig,
    InterpretConfig,
    InterventionConfig,
    ProbeConfig,
    ValueVectorConfig,
)
from xdetox.config.loader import (
    DEFAULT_RECIPE,
    apply_overrides,
    load_config,
    parse_override,
    resolve_config_path,
    shipped_recipe,
    to_params,
    validate_section,
)
from xdetox.config.metrics import MetricsConfig
from xdetox.config.rl import OnlineRLConfig, PPOConfig, RewardConfig, RLConfig
from xdetox.config.root import Config
from xdetox.config.scoring import ScoringConfig
from xdetox.config.training import LoraConfig, TrainingConfig

__all__ = [
    "DEFAULT_RECIPE",
    "PROTOCOLS",
    "SELF_PAIRS",
    "STAGES",
    "XG_LANGUAGES",
    "ActivationConfig",
    "AlignmentConfig",
    "ClusterConfig",
    "Config",
    "DataConfig",
    "EvaluationConfig",
    "GenerationConfig",
    "InterpretConfig",
    "InterventionConfig",
    "LengthFilter",
    "LoraConfig",
    "MetricsConfig",
    "ModelConfig",
    "OnlineRLConfig",
    "PPOConfig",
    "ProbeConfig",
    "RLConfig",
    "ResourceConfig",
    "RewardConfig",
    "ScoringConfig",
    "SelfPairsConfig",
    "TrainingConfig",
    "VLLMConfig",
    "ValueVectorConfig",
    "_Strict",
    "apply_overrides",
    "load_config",
    "parse_override",
    "resolve_config_path",
    "shipped_recipe",
    "to_params",
    "validate_section",
]
