"""``plugin-di serve MODULE:ATTR``: serve a plugin (or plugin set) over Connect RPC."""

from __future__ import annotations

import argparse
import sys

from plugin_di.cli._target import TargetError, load_target


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``plugin-di serve``."""
    parser.add_argument("target", metavar="MODULE:ATTR", help="a Plugin, PluginSet or list")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--bind", metavar="HOST:PORT", help="TCP address (default 127.0.0.1:0)")
    where.add_argument("--uds", metavar="PATH", help="serve on a Unix socket at PATH")
    parser.add_argument("--tls-cert", metavar="FILE", help="PEM certificate (enables TLS)")
    parser.add_argument("--tls-key", metavar="FILE", help="PEM private key of --tls-cert")
    parser.add_argument(
        "--grace-period",
        type=float,
        default=None,
        metavar="SECONDS",
        help="how long in-flight calls may run after a stop request "
        "(default: PLUGIN_DI_SHUTDOWN_GRACE, else 5)",
    )


def run(args: argparse.Namespace) -> int:
    """Load the target and serve it; the exit code of the plugin process."""
    from plugin_di.plugin.definition import Plugin, PluginSet
    from plugin_di.plugin.server import serve

    if (args.tls_cert is None) != (args.tls_key is None):
        print("plugin-di serve: --tls-cert and --tls-key go together", file=sys.stderr)
        return 2
    try:
        target = load_target(args.target)
    except TargetError as exc:
        print(f"plugin-di serve: {exc}", file=sys.stderr)
        return 2
    ok = isinstance(target, Plugin | PluginSet) or (
        isinstance(target, list | tuple) and all(isinstance(p, Plugin) for p in target)
    )
    if not ok:
        print(
            f"plugin-di serve: {args.target} is a {type(target).__name__}, "
            "not a Plugin, PluginSet or list of Plugins",
            file=sys.stderr,
        )
        return 2
    return serve(
        target,
        bind=args.bind,
        uds=args.uds,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        grace_period=args.grace_period,
    )
