"""``edge-runner token create|list|revoke``: scoped tokens on the active context's control plane."""

from __future__ import annotations

import argparse

from edge_runner.cli.output import ago, print_json, print_table
from edge_runner.client import Client

__all__ = ["register"]

SCOPES = ("predict", "read", "manage", "runner")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``token`` command group."""
    parser = sub.add_parser("token", help="create, list and revoke access tokens")
    group = parser.add_subparsers(dest="token_command", metavar="SUBCOMMAND")
    create = group.add_parser(
        "create",
        help="create a token (its secret is printed once)",
        description="Create a token with the given scopes. `--scope runner` alone makes a "
        "runner token (er_rt_...), which can connect runners and nothing else.",
    )
    create.add_argument("--name", required=True, help="a label to recognise it by")
    create.add_argument(
        "--scope",
        action="append",
        choices=SCOPES,
        dest="scopes",
        help="repeat for several (default: predict and read)",
    )
    create.add_argument(
        "--expires-in", type=float, metavar="SECONDS", help="the token stops working after this"
    )
    create.add_argument("-o", "--output", choices=("text", "json"), default="text")
    create.add_argument("--context", help="context to use (default: the active one)")
    create.set_defaults(func=_create)
    listing = group.add_parser("list", help="list your tokens (ids and scopes, never secrets)")
    listing.add_argument("-o", "--output", choices=("table", "json"), default="table")
    listing.add_argument("--context", help="context to use (default: the active one)")
    listing.set_defaults(func=_list)
    revoke = group.add_parser("revoke", help="revoke a token; runners using it disconnect")
    revoke.add_argument("token_id", help="the id shown by `token list`")
    revoke.add_argument("--context", help="context to use (default: the active one)")
    revoke.set_defaults(func=_revoke)


def _create(args: argparse.Namespace) -> int:
    with Client.from_context(args.context) as client:
        made = client.create_token(args.name, args.scopes or ["predict", "read"], args.expires_in)
    if args.output == "json":
        print_json(made)
        return 0
    print(f"created token {made['id']} ({made['name']}; scopes: {', '.join(made['scopes'])})")
    print("its secret, shown only now (store it in a secret manager or a context):")
    print(made["token"])
    return 0


def _list(args: argparse.Namespace) -> int:
    with Client.from_context(args.context) as client:
        tokens = client.tokens()
    if args.output == "json":
        print_json(tokens)
        return 0
    print_table(
        ("ID", "NAME", "KIND", "SCOPES", "CREATED", "STATE"),
        [
            (
                t["id"],
                t["name"],
                t["kind"],
                ",".join(t["scopes"]),
                ago(float(t["created_at"])),
                "revoked" if t["revoked"] else "live",
            )
            for t in tokens
        ],
    )
    return 0


def _revoke(args: argparse.Namespace) -> int:
    with Client.from_context(args.context) as client:
        done = client.revoke_token(args.token_id)
    print(f"revoked {args.token_id}; {done['tunnels_closed']} runner tunnel(s) closed")
    return 0
