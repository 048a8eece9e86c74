"""How discovery picks one provider among several: first, round-robin, random, weighted."""

from __future__ import annotations

import enum
import random
from collections.abc import Sequence

from plugin_di.host.store import Registration


class Strategy(enum.Enum):
    """Selection strategies (connect-plugin-go's, with weighted actually implemented)."""

    FIRST = "first"
    ROUND_ROBIN = "round-robin"
    RANDOM = "random"
    WEIGHTED = "weighted"


def weight_of(registration: Registration) -> float:
    """The ``weight`` metadata of a registration (default 1; invalid or negative counts as 0)."""
    raw = registration.metadata.get("weight", "1")
    try:
        weight = float(raw)
    except ValueError:
        return 0.0
    return weight if weight > 0 else 0.0


class Selector:
    """Picks a provider per service type; round-robin keeps a cursor per type.

    Only ``select`` advances the round-robin cursor (connect-plugin-go's
    ``HasService`` advanced it as a side effect).
    """

    def __init__(self, rng: random.Random | None = None) -> None:
        self._rng = rng or random.Random()
        self._strategies: dict[str, Strategy] = {}
        self._cursor: dict[str, int] = {}
        self.default = Strategy.FIRST

    def set_strategy(self, service_type: str, strategy: Strategy) -> None:
        """Use ``strategy`` for ``service_type``."""
        self._strategies[service_type] = strategy

    def strategy(self, service_type: str) -> Strategy:
        return self._strategies.get(service_type, self.default)

    def select(self, service_type: str, candidates: Sequence[Registration]) -> Registration:
        """One of ``candidates`` (which must not be empty)."""
        if not candidates:
            raise ValueError("no candidates to select from")
        strategy = self.strategy(service_type)
        if strategy is Strategy.ROUND_ROBIN:
            index = self._cursor.get(service_type, 0)
            self._cursor[service_type] = index + 1
            return candidates[index % len(candidates)]
        if strategy is Strategy.RANDOM:
            return self._rng.choice(list(candidates))
        if strategy is Strategy.WEIGHTED:
            weights = [weight_of(c) for c in candidates]
            if sum(weights) <= 0:
                return candidates[0]
            return self._rng.choices(list(candidates), weights=weights, k=1)[0]
        return candidates[0]
