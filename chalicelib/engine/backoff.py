"""Retry delays: exponential with jitter, capped."""

from __future__ import annotations

import random

from msgspec import Struct


class Backoff(Struct, frozen=True):
    base_s: float = 1.0
    cap_s: float = 60.0

    def delay(self, failures: int, rng: random.Random | None = None) -> float:
        """Delay before retry number `failures` (1 = first retry): base*2^(n-1), jittered to [50%, 100%]."""
        raw = min(self.cap_s, self.base_s * (2 ** max(0, failures - 1)))
        return raw * (0.5 + 0.5 * (rng or random).random())
