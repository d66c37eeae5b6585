"""The eval gate: thresholds (in `gate.json`, beside the figures they were set from) and the
check that fails a run. `paper-assistant eval --gate` runs the gate's sample and exits 1 on a miss."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .scoring import failing

GATE_FILE = Path(__file__).parent / "gate.json"


def load_gate(path: Path = GATE_FILE) -> dict[str, Any]:
    """The gate definition: its sample, its thresholds, and the measured values behind them."""
    gate = json.loads(path.read_text(encoding="utf-8"))
    for key in ("sample", "thresholds"):
        if key not in gate:
            raise ValueError(f"{path} has no {key!r}; see evals/README.md")
    return gate


def parse_bounds(rules: list[str]) -> dict[str, float]:
    """--fail-under METRIC=VALUE rules as a dict; raises ValueError naming a malformed rule."""
    bounds = {}
    for rule in rules:
        name, sep, value = rule.partition("=")
        try:
            bounds[name.strip()] = float(value)
        except ValueError:
            raise ValueError(f"--fail-under {rule!r}: write METRIC=NUMBER, e.g. answer_accuracy=0.8") from None
        if not sep:
            raise ValueError(f"--fail-under {rule!r}: write METRIC=NUMBER")
    return bounds


def check(summary: dict[str, Any], thresholds: dict[str, float]) -> list[str]:
    """The thresholds the summary misses (empty when the gate passes)."""
    return failing(summary, thresholds)
