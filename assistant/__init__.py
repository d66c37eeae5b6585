"""paper-assistant: answers questions over research-paper abstracts, citing the papers it used."""

from __future__ import annotations

import os

# Offline by default: nothing may phone home or fetch weights at run time. The one place these are set:
# every module of the package (and every server a test starts from it) runs after this.
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from .answering import REFUSAL
from .api import Assistant, StreamEvent
from .config import Settings
from .errors import AssistantError
from .types import Answer, Citation, Claim, Paper, Passage

__all__ = [
    "REFUSAL",
    "Answer",
    "Assistant",
    "AssistantError",
    "Citation",
    "Claim",
    "Paper",
    "Passage",
    "Settings",
    "StreamEvent",
]
