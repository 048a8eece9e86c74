"""The engine's and the launcher's modules import each other without a cycle.

`lint-imports` checks this too (an ``acyclic_siblings`` contract), but it leaves out the
imports made only for type checkers. A cycle through them is a cycle all the same (it
was how ``app`` -> ``_run`` -> ``app`` and ``app`` -> ``export`` -> ``app`` hid), so this
test counts them.
"""

from __future__ import annotations

import grimp
import pytest


@pytest.mark.parametrize("package", ["plugin_di.di", "plugin_di.launch", "plugin_di.launch.zygote"])
def test_no_cycle_between_the_modules_of(package: str) -> None:
    graph = grimp.build_graph("plugin_di", exclude_type_checking_imports=False, cache_dir=None)
    assert graph.nominate_cycle_breakers(package) == set()
