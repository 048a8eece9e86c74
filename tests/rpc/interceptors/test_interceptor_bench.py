"""bench/security.py runs and reports every figure (no timing is asserted)."""

from __future__ import annotations

from bench.security import SecurityBench, main, measure_security


def test_measure_security_reports_positive_rates() -> None:
    result = measure_security(n=2000, rounds=1)
    assert isinstance(result, SecurityBench)
    assert result.validator == "plugin_di.host.tokens.TokenStore"
    for figure in (
        result.token_validations,
        result.token_auth_checks,
        result.limiter_checks,
        result.limiter_checks_many_keys,
    ):
        assert figure > 0


def test_main_prints_the_table(capsys: object) -> None:
    assert main(["--quick"]) == 0
    out = capsys.readouterr().out  # type: ignore[attr-defined]
    assert "token validations/s" in out
    assert "rate-limiter checks/s" in out
