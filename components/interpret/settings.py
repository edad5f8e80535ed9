"""Parameters of the interpretability stages: they live in ``xdetox.config.interpret``."""

from xdetox.config.interpret import (
    ActivationConfig,
    AlignmentConfig,
    InterpretConfig,
    InterventionConfig,
    ProbeConfig,
    ValueVectorConfig,
)

__all__ = [
    "ActivationConfig",
    "AlignmentConfig",
    "InterpretConfig",
    "InterventionConfig",
    "ProbeConfig",
    "ValueVectorConfig",
]
