"""How a metric reads on screen: "hint started speaking after 230 ms", not ``hint.trigger_to_audible_ms``.

The names (a ``Literal``) and their words live in one table, :data:`voicecoach.coach.actions.METRIC_LABELS`;
this module only adds the value in its unit and the hint it belongs to, the same way for every view.
"""

from __future__ import annotations

from typing import Final

from ..coach.actions import METRIC_LABELS, Metric, MetricName
from ..coach.labels import tier_label

# The headline latency ("hint → audio" in the status bar): measured at the player, when the first audible sample
# of the hint was handed to the device or file. The server's output_audio_buffer.started comes earlier and is
# kept in the log under its own name, but it is not what the user hears.
HEADLINE_LATENCY: Final[MetricName] = "hint.trigger_to_audible_ms"


def format_ms(value: float) -> str:
    """230 ms; below 10 ms one decimal (a 2.1 ms key-to-send is not "2 ms")."""
    return f"{value:.1f} ms" if value < 10 else f"{value:.0f} ms"


def describe_metric(metric: Metric) -> str:
    """One readable line: "hint started speaking after 230 ms (quick hint 2)", "response cost $0.0031 …"."""
    name: str = metric.name
    label = METRIC_LABELS.get(metric.name) or name.rsplit("_", 1)[0].replace(".", " ").replace("_", " ")
    value = metric.value
    if name.endswith("_ms"):
        shown = format_ms(value)
    elif name.endswith("_usd"):
        shown = f"${value:.4f}"
    else:
        shown = f"{value:.0f}"
    text = f"{label} {shown}"
    total = metric.data.get("total_usd")
    if isinstance(total, int | float):
        text += f" (total ${total:.4f})"
    channel = _str(metric.data.get("channel"))
    if channel is not None:
        text += f" ({channel})"
    tier = tier_label(_str(metric.data.get("tier")))
    if tier is not None:
        number = metric.data.get("hint")
        text += f" ({tier} #{number})" if isinstance(number, int) else f" ({tier})"
    return text


def _str(value: object) -> str | None:
    return value if isinstance(value, str) else None
