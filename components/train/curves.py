"""Training curves from the log a training stage writes (``training_log.jsonl``): final values
for a KFP ``Metrics`` artifact and one figure (PNG, embedded in an HTML artifact).

What is drawn, per method (train and eval series of a quantity share a panel):

* DPO: loss and eval loss, reward margin (chosen − rejected implicit reward), reward accuracy;
* SFT (first stage of sft_dpo): loss and eval loss, mean token accuracy;
* PPO (compact trainer): mean reward, KL to the reference (nats per sequence), value loss;
* RLOO/GRPO (TRL): mean reward, KL, loss.

A quantity that was never logged (e.g. eval loss without eval pairs) has no final value and an
empty panel saying so: it is never reported as 0.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from pathlib import Path
from typing import Any

from xdetox.components.train.outputs import TRAINING_LOG
from xdetox.files import iter_jsonl

SFT_LOG = "sft_training_log.jsonl"

Panel = tuple[str, tuple[str, ...]]  # (title, logged keys drawn on it)

PANELS: dict[str, tuple[Panel, ...]] = {
    "dpo": (
        ("loss", ("loss", "eval_loss")),
        ("reward margin", ("rewards/margins", "eval_rewards/margins")),
        ("reward accuracy", ("rewards/accuracies", "eval_rewards/accuracies")),
    ),
    "sft": (
        ("loss", ("loss", "eval_loss")),
        ("mean token accuracy", ("mean_token_accuracy", "eval_mean_token_accuracy")),
    ),
    "ppo": (
        ("mean reward", ("reward_mean",)),
        ("KL (nats / sequence)", ("kl",)),
        ("value loss", ("value_loss",)),
    ),
    "online": (
        ("mean reward", ("reward",)),
        ("KL", ("kl",)),
        ("loss", ("loss",)),
    ),
}

# Stages of each training method (and of SFT alone), with the log file and panel set of each.
STAGES: dict[str, tuple[tuple[str, str, str], ...]] = {
    "dpo": (("dpo", TRAINING_LOG, "dpo"),),
    "sft": (("sft", TRAINING_LOG, "sft"),),  # ``xdetox sft``: the supervised stage alone
    "sft_dpo": (("sft", SFT_LOG, "sft"), ("dpo", TRAINING_LOG, "dpo")),
    "ppo": (("ppo", TRAINING_LOG, "ppo"),),
    "rloo": (("rloo", TRAINING_LOG, "online"),),
    "grpo": (("grpo", TRAINING_LOG, "online"),),
}


def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def series(log: list[dict[str, Any]], key: str) -> list[tuple[float, float]]:
    """``(step, value)`` of every entry that logged ``key`` with a finite number."""
    points = []
    for index, entry in enumerate(log):
        value = _finite(entry.get(key))
        if value is not None:
            step = _finite(entry.get("step"))
            points.append((step if step is not None else float(index + 1), value))
    return points


def metric_name(stage: str, key: str, prefix_stage: bool) -> str:
    """``final_<key>`` with ``/`` as ``_`` (``final_rewards_margins``); ``final_sft_loss`` when
    a method has several stages and this is not the last one."""
    name = key.replace("/", "_")
    return f"final_{stage}_{name}" if prefix_stage else f"final_{name}"


def final_values(method: str, logs: dict[str, list[dict[str, Any]]]) -> dict[str, float]:
    """The last logged value of every drawn quantity (absent ones left out)."""
    stages = STAGES[method]
    out: dict[str, float] = {}
    for position, (stage, _, panels) in enumerate(stages):
        log = logs.get(stage, [])
        last_stage = position == len(stages) - 1
        for _, keys in PANELS[panels]:
            for key in keys:
                points = series(log, key)
                if points:
                    out[metric_name(stage, key, not last_stage)] = points[-1][1]
    return out


# Curve finals that a trainer's summary already reports under its own name (same number).
SUMMARY_ALIASES: dict[str, str] = {
    "final_loss": "final_train_loss",
    "final_eval_loss": "eval_loss",
    "final_rewards_margins": "final_reward_margin",
    "final_eval_rewards_margins": "eval_reward_margin",
    "final_rewards_accuracies": "final_reward_accuracy",
    "final_eval_rewards_accuracies": "eval_reward_accuracy",
    "final_eval_mean_token_accuracy": "eval_mean_token_accuracy",
    "final_kl": "kl_last",
    "final_reward": "reward_last",
}


def stage_metrics(summary: dict[str, Any], finals: dict[str, float]) -> dict[str, float]:
    """What a KFP ``Metrics`` artifact gets: the run summary's numbers, then the curves' final
    values the summary does not already report under another name (one number, one key)."""
    out = {
        k: float(v)
        for k, v in summary.items()
        if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(float(v))
    }
    for key, value in finals.items():
        if key not in out and SUMMARY_ALIASES.get(key) not in out:
            out[key] = value
    return out


def read_logs(output_dir: str | Path, method: str) -> dict[str, list[dict[str, Any]]]:
    """The log of each stage of ``method`` found in a training output folder."""
    output_dir = Path(output_dir)
    logs = {}
    for stage, filename, _ in STAGES[method]:
        path = output_dir / filename
        if path.is_file():
            logs[stage] = [record for _, record in iter_jsonl(path)]
    return logs


def plot_png(method: str, logs: dict[str, list[dict[str, Any]]], title: str) -> bytes:
    """One row of panels per stage; returns the PNG bytes (matplotlib's Agg backend)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stages = STAGES[method]
    n_cols = max(len(PANELS[panels]) for _, _, panels in stages)
    fig, axes = plt.subplots(
        len(stages), n_cols, figsize=(4.2 * n_cols, 3.2 * len(stages)), squeeze=False
    )
    for row, (stage, _, panels) in enumerate(stages):
        log = logs.get(stage, [])
        for col in range(n_cols):
            ax = axes[row][col]
            if col >= len(PANELS[panels]):
                ax.axis("off")
                continue
            panel_title, keys = PANELS[panels][col]
            drawn = False
            for key in keys:
                points = series(log, key)
                if points:
                    xs, ys = zip(*points, strict=True)
                    # Markers too: a series of one logged point is otherwise invisible.
                    style = "o--" if key.startswith("eval_") else ".-"
                    ax.plot(xs, ys, style, markersize=4, label=key)
                    drawn = True
            ax.set_title(f"{stage}: {panel_title}", fontsize=10)
            ax.set_xlabel("step")
            if drawn:
                ax.legend(fontsize=7)
            else:
                ax.text(0.5, 0.5, "not logged", ha="center", va="center", transform=ax.transAxes)
            ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    return buffer.getvalue()


def curves_html(png: bytes, title: str, finals: dict[str, float], summary: dict[str, Any]) -> str:
    """A self-contained HTML page: the figure (base64 PNG) and tables of final values."""

    def rows(values: dict[str, Any]) -> str:
        return "".join(
            f"<tr><td>{html.escape(str(k))}</td><td>{html.escape(_format(v))}</td></tr>"
            for k, v in sorted(values.items())
        )

    image = base64.b64encode(png).decode("ascii")
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title>"
        "<style>body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse}"
        "td{border:1px solid #ccc;padding:2px 8px}</style></head><body>"
        f"<h1>{html.escape(title)}</h1>"
        f"<img alt='training curves' src='data:image/png;base64,{image}'>"
        f"<h2>Final values</h2><table>{rows(finals)}</table>"
        f"<h2>Run summary</h2><table>{rows(summary)}</table>"
        "</body></html>\n"
    )


def _format(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return json.dumps(value) if not isinstance(value, str) else value


def write_curves(
    output_dir: str | Path, method: str, html_path: str | Path, *, title: str | None = None
) -> dict[str, float]:
    """Read the logs of a training output, write the HTML page, return the final values."""
    from xdetox.files import write_text

    output_dir = Path(output_dir)
    logs = read_logs(output_dir, method)
    finals = final_values(method, logs)
    summary_path = output_dir / "train_summary.json"
    summary = json.loads(summary_path.read_text(encoding="utf-8")) if summary_path.is_file() else {}
    title = title or f"xdetox training curves ({method})"
    write_text(html_path, curves_html(plot_png(method, logs, title), title, finals, summary))
    return finals
