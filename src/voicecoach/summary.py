"""The end-of-run summary's cost line: the total and its parts, which add up as printed.

Pure: a :class:`~voicecoach.executor.RunReport` in, a line out. The parts are hints (of which the context's
share of their input, at the rates charged for it) and the transcription of each channel; see
:class:`voicecoach.coach.cost.CostBreakdown`.
"""

from __future__ import annotations

from .coach.cost import CostBreakdown
from .executor import RunReport

_UNIT = 10_000  # the line shows dollars to 4 decimals


def cost_line(report: RunReport) -> str:
    """``estimated cost: $0.0123 (hints $0.0100, of which context $0.0004; transcription: you $0.0015, them
    $0.0008)``, plus how many hints were priced from what they generated because their usage never came."""
    cost = report.cost
    if cost is None:
        return f"estimated cost: ${report.cost_usd:.4f}"
    total, (hints, you, them) = _rounded(cost.total, (cost.hints, cost.you, cost.them))
    context = min(round(cost.context * _UNIT), hints)
    line = (
        f"estimated cost: {_usd(total)} (hints {_usd(hints)}, of which context {_usd(context)}; "
        f"transcription: you {_usd(you)}, them {_usd(them)})"
    )
    if cost.estimated_hints:
        n = cost.estimated_hints
        line += f"; {n} hint{'s' if n != 1 else ''} cut off before {'their' if n != 1 else 'its'} usage came, priced"
        line += " from what was generated"
    return line


def _rounded(total: float, parts: tuple[float, ...]) -> tuple[int, tuple[int, ...]]:
    """The total and the parts in units of $0.0001, the parts rounded so that they add up to the rounded total
    (largest remainders first): a reader who adds the printed parts gets the printed total."""
    whole = round(total * _UNIT)
    scaled = [max(0.0, p) * _UNIT for p in parts]
    floors = [int(x) for x in scaled]
    short = whole - sum(floors)
    order = sorted(range(len(parts)), key=lambda i: scaled[i] - floors[i], reverse=True)
    for i in order[: max(0, short)]:
        floors[i] += 1
    return sum(floors), tuple(floors)


def _usd(units: int) -> str:
    return f"${units / _UNIT:.4f}"


__all__ = ["CostBreakdown", "cost_line"]
