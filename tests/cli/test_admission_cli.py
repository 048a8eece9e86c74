"""``plugin-di join-token`` and the admission flags of ``plugin-di host``."""

from __future__ import annotations

import argparse
import os
import stat
import time
from pathlib import Path

import pytest

from plugin_di.cli import main
from plugin_di.cli.host import add_arguments, admission_policy
from plugin_di.host import join_tokens
from plugin_di.host.admission import AllowEntry
from plugin_di.settings import Settings


def test_join_token_makes_a_key_then_a_token_the_host_verifies(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = tmp_path / "admission.key"
    assert main(["join-token", "--new-key", "--key-file", str(key)]) == 0
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    assert capsys.readouterr().out == ""
    assert main(["join-token", "--key-file", str(key), "--self-id", "kv",
                 "--provides", "kv, cache", "--ttl", "120"]) == 0  # fmt: skip
    out, err = capsys.readouterr()
    token = out.strip()
    assert out == token + "\n"  # only the token on stdout: $(plugin-di join-token ...)
    assert "join token for self_id 'kv', may provide kv, cache, until 20" in err
    claims = join_tokens.verify(token, join_tokens.load_keys(key), now=time.time())
    assert (claims.self_id, claims.provides) == ("kv", {"kv", "cache"})
    assert 110 < claims.expires_at - time.time() <= 120


def test_join_token_reads_the_key_file_from_the_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    key = join_tokens.create_key_file(tmp_path / "k")
    monkeypatch.setenv("PLUGIN_DI_ADMISSION_KEY_FILE", str(key))
    assert main(["join-token", "--self-id", "app"]) == 0
    token = capsys.readouterr().out.strip()
    claims = join_tokens.verify(token, join_tokens.load_keys(key), now=time.time())
    assert claims.provides == frozenset()  # a consumer


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["--self-id", "kv"], "give --key-file (or PLUGIN_DI_ADMISSION_KEY_FILE)"),
        (["--key-file", "{key}"], "give --self-id"),
        (["--key-file", "{key}", "--new-key"], "exists: remove it first"),
        (["--key-file", "{missing}", "--self-id", "kv"], "cannot read admission key file"),
        (["--key-file", "{key}", "--self-id", "kv", "--ttl", "0"], "ttl must be positive"),
        (["--key-file", "{key}", "--self-id", "../kv"], "self_id"),
    ],
)
def test_join_token_errors_exit_2_saying_why(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    error: str,
) -> None:
    monkeypatch.delenv("PLUGIN_DI_ADMISSION_KEY_FILE", raising=False)
    key = join_tokens.create_key_file(tmp_path / "k")
    filled = [a.format(key=key, missing=tmp_path / "missing") for a in args]
    assert main(["join-token", *filled]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert error in err


def _host_args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(list(argv))


def test_host_flags_add_to_the_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLUGIN_DI_ADMISSION_ALLOW", "app=")
    args = _host_args("--allow", "gokv=kv", "--allow", "cache=cache,kv",
                      "--allow-cert", "edge=kv", "--client-ca", str(tmp_path / "ca.pem"),
                      "--admission-key-file", str(tmp_path / "k"))  # fmt: skip
    policy = admission_policy(args, Settings())
    assert policy.allow == (
        AllowEntry("app"),
        AllowEntry("gokv", frozenset({"kv"})),
        AllowEntry("cache", frozenset({"cache", "kv"})),
    )
    assert policy.allow_cert == (AllowEntry("edge", frozenset({"kv"})),)
    assert policy.client_ca == tmp_path / "ca.pem"
    assert policy.key_file == tmp_path / "k"
    assert not policy.open_registration
    assert admission_policy(_host_args("--open-registration"), Settings()).open_registration


@pytest.mark.parametrize(
    ("argv", "error"),
    [
        (["--allow", "gokv"], "--allow 'gokv': expected SELF_ID=TYPE[,TYPE]"),
        (["--allow-cert", "e=a/b"], "--allow-cert 'e': provides"),
        (["--client-ca", "ca.pem"], "--client-ca needs the host to serve TLS"),
        (["--admission-key-file", "/nonexistent/k"], "cannot read admission key file"),
    ],
)
def test_host_refuses_bad_admission_flags_before_serving(
    capsys: pytest.CaptureFixture[str], argv: list[str], error: str
) -> None:
    assert main(["host", *argv]) == 2
    out, err = capsys.readouterr()
    assert out == ""  # no handshake line: the host never served
    assert error in err
