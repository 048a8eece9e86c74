"""``plugin-di join-token``: issue a join token that admits one plugin to a host.

The token names a self id, the service types the plugin may provide and an expiry, signed
with the host's admission key (docs/security.md#admission). It is printed alone on stdout,
so ``export PLUGIN_DI_JOIN_TOKEN=$(plugin-di join-token ...)`` works; what it grants goes
to stderr. ``--new-key`` makes the key file first (mode 0600).
"""

from __future__ import annotations

import argparse
import datetime
import sys

DEFAULT_TTL = 3600.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--key-file",
        metavar="PATH",
        help="the host's admission key file (default: PLUGIN_DI_ADMISSION_KEY_FILE)",
    )
    parser.add_argument(
        "--new-key", action="store_true", help="create the key file first (refuses to overwrite)"
    )
    parser.add_argument("--self-id", help="the self_id the plugin handshakes with")
    parser.add_argument(
        "--provides",
        default="",
        metavar="TYPE[,TYPE]",
        help="service types the plugin may register (empty: none, a consumer)",
    )
    parser.add_argument(
        "--ttl",
        type=float,
        default=DEFAULT_TTL,
        metavar="SECONDS",
        help=f"how long the token admits the plugin (default {DEFAULT_TTL:g})",
    )


def run(args: argparse.Namespace) -> int:
    from plugin_di.clock import WALL_CLOCK
    from plugin_di.host import join_tokens
    from plugin_di.settings import Settings

    key_file = args.key_file or Settings().admission_key_file
    if not key_file:
        print("plugin-di join-token: give --key-file (or PLUGIN_DI_ADMISSION_KEY_FILE)",
              file=sys.stderr)  # fmt: skip
        return 2
    try:
        if args.new_key:
            join_tokens.create_key_file(key_file)
            print(f"created admission key file {key_file}", file=sys.stderr)
            if not args.self_id:
                return 0
        if not args.self_id:
            print("plugin-di join-token: give --self-id", file=sys.stderr)
            return 2
        key = join_tokens.load_keys(key_file)[0]
        provides = [t.strip() for t in args.provides.split(",") if t.strip()]
        now = WALL_CLOCK.now()
        token = join_tokens.issue(key, args.self_id, provides, ttl=args.ttl, now=now)
    except join_tokens.JoinTokenError as exc:
        print(f"plugin-di join-token: {exc}", file=sys.stderr)
        return 2
    expires = datetime.datetime.fromtimestamp(now + args.ttl, datetime.UTC)
    print(
        f"join token for self_id {args.self_id!r}, may provide "
        f"{', '.join(provides) or 'nothing'}, until {expires:%Y-%m-%dT%H:%M:%SZ}",
        file=sys.stderr,
    )
    print(token, flush=True)
    return 0
