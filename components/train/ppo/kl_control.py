"""KL-penalty coefficient controllers (Ziegler et al., 2019, "Fine-Tuning Language Models from
Human Preferences", §2.2).

The reward the policy maximises is ``score - beta * KL(policy || reference)``. A fixed ``beta``
either lets the policy drift far from the reference (reward hacking, broken fluency) or holds it
back; the adaptive controller moves ``beta`` so that the observed KL tracks a target:

    e = clip(KL / target - 1, -0.2, 0.2)
    beta <- beta * (1 + e * n_steps / horizon)

``n_steps`` is the number of samples (rollouts) the KL was measured on, so the adaptation speed
does not depend on the batch size. The clip keeps one noisy batch from moving beta by much.
"""

from __future__ import annotations

from typing import Any


class FixedKLController:
    """Constant coefficient."""

    def __init__(self, kl_coef: float):
        self.value = float(kl_coef)

    def update(self, current_kl: float, n_steps: int) -> None:
        """Nothing to adapt."""

    def state_dict(self) -> dict[str, Any]:
        return {"kind": "fixed", "value": self.value}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.value = float(state["value"])


class AdaptiveKLController:
    """Proportional controller of the KL coefficient (see module docstring)."""

    def __init__(self, init_kl_coef: float, target: float, horizon: int):
        if target <= 0 or horizon <= 0:
            raise ValueError("target and horizon must be positive")
        self.value = float(init_kl_coef)
        self.target = float(target)
        self.horizon = int(horizon)

    def update(self, current_kl: float, n_steps: int) -> None:
        proportional_error = min(max(current_kl / self.target - 1.0, -0.2), 0.2)
        self.value *= 1.0 + proportional_error * n_steps / self.horizon

    def state_dict(self) -> dict[str, Any]:
        return {
            "kind": "adaptive",
            "value": self.value,
            "target": self.target,
            "horizon": self.horizon,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        # Only the running value is state; target and horizon come from the (checked) config.
        self.value = float(state["value"])


def build_kl_controller(
    init_kl_coef: float, *, adaptive: bool, target: float, horizon: int
) -> FixedKLController | AdaptiveKLController:
    if adaptive:
        return AdaptiveKLController(init_kl_coef, target, horizon)
    return FixedKLController(init_kl_coef)
