"""Process-wide tuning for a long-running server process."""

from __future__ import annotations

import gc


def tune_gc() -> None:
    """Everything imported so far lives as long as the process: keep the cyclic collector
    off it, and collect less often, so full collections do not stall webhook answers."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 20, 50)
