"""`tokendrop audit`: argument parsing, the run, and exit codes (0 clean, 1 attention, 2 could not audit)."""

from __future__ import annotations

import argparse
import datetime
import sys
from typing import TYPE_CHECKING, Any, TextIO

from ..errors import TokendropError
from ..secret import scrub
from ..validation import parse_duration
from .evaluate import DEFAULT_EXPIRY_WINDOW, evaluate
from .render import Source, dumps, table, to_json
from .state import StateError, load_sources

if TYPE_CHECKING:
    from ..provider import ProviderCore
    from ..registry.base import AuditWalk

CLEAN, ATTENTION, FAILED = 0, 1, 2
DEFAULT_CONCURRENCY = 8

DESCRIPTION = """\
List every token tokendrop manages in the given states (and, when walking organizations, every token
carrying a tokendrop marker), with issuer, age, expiry, last use, sink and sink version, and flag what
needs attention: orphan, revoked, sink_drift, rotation_overdue, expiring, previous_overdue.

Reads metadata only: token values are never fetched or printed. Credentials come from the same
environment variables as the provider (TFE_TOKEN, BUILDKITE_API_TOKEN, TOKENVAULT_API_KEY, VAULT_TOKEN,
AWS's credential chain, ...); secrets are never taken as flags, so they stay out of process listings."""

EPILOG = """\
exit codes: 0 nothing needs attention, 1 something does, 2 the audit could not run (usage, credentials,
            an issuer or sink that failed)

examples:
  tokendrop audit --state terraform.tfstate
  terraform show -json | tokendrop audit --state - --json
  tokendrop audit --state . --tfe-organization acme      # every *.tfstate below . (cdktf stacks)"""


def add_command(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    audit = commands.add_parser("audit", help="list managed tokens and flag what needs attention",
                                description=DESCRIPTION, epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    what = audit.add_argument_group("what to audit (at least one)")
    what.add_argument("--state", action="append", default=[], metavar="PATH",
                      help="a state file, `terraform state pull` or `terraform show -json` output; `-` reads stdin; "
                      "a directory means every *.tfstate below it. Repeatable")
    for option in _walk_options():  # each issuer's own, from its registry entry
        if option.metavar is None:
            what.add_argument(option.flag, action="store_true", help=option.help)
        else:
            what.add_argument(option.flag, action="append", default=[], metavar=option.metavar, help=option.help)

    out = audit.add_argument_group("output")
    out.add_argument("--json", action="store_true", help="print a JSON document (schema tokendrop-audit/1)")
    progress = out.add_mutually_exclusive_group()
    progress.add_argument("--progress", action="store_true", default=None,
                          help="show progress on stderr even when it is not a terminal")
    progress.add_argument("--no-progress", action="store_false", dest="progress",
                          help="never show progress (default: shown when stderr is a terminal)")

    checks = audit.add_argument_group("checks")
    checks.add_argument("--expiring-within", default=None, metavar="DURATION",
                        help="flag tokens expiring within this long, for resources without rotate_before_expiry "
                        "(default: 7d)")
    checks.add_argument("--skip-sinks", action="store_true",
                        help="do not read the sinks' metadata (no AWS / Vault access needed); sink drift is then "
                        "only what state recorded")
    checks.add_argument("--concurrency", type=int, default=DEFAULT_CONCURRENCY, metavar="N",
                        help="listings and sink reads in flight at once (default: %(default)s)")

    conn = audit.add_argument_group("connections (default: the provider's environment variables)")
    for flag, env in (("--tfe-address", "TFE_ADDRESS"), ("--buildkite-rest-url", "BUILDKITE_REST_URL"),
                      ("--tokenvault-api-url", "TOKENVAULT_API_URL"), ("--vault-address", "VAULT_ADDR"),
                      ("--vault-namespace", "VAULT_NAMESPACE"), ("--aws-region", "AWS_REGION"),
                      ("--aws-profile", "AWS_PROFILE"), ("--aws-endpoint-url-ssm", "AWS_ENDPOINT_URL_SSM")):
        conn.add_argument(flag, metavar="VALUE", help=f"default: ${env}")
    audit.set_defaults(handler=run_command)


def _walk_options() -> list[AuditWalk[Any]]:
    from ..registry import issuers

    return [entry.audit_walk for entry in issuers.ISSUERS if entry.audit_walk is not None]


def run_command(args: argparse.Namespace) -> int:
    return run(args)


def run(args: argparse.Namespace, *, stdin: TextIO | None = None, stdout: TextIO | None = None,
        stderr: TextIO | None = None, now: datetime.datetime | None = None, core: ProviderCore | None = None) -> int:
    """The whole audit. `now` and `core` exist for tests (a fixed clock, a provider core whose clients
    the audit uses)."""
    stdin, stdout, stderr = stdin or sys.stdin, stdout or sys.stdout, stderr or sys.stderr

    def fail(message: str) -> int:
        stderr.write(f"tokendrop audit: {scrub(message)}\n")
        return FAILED

    from .collect import Walk

    if not args.state and not Walk.from_args(args).issuers:
        return fail("nothing to audit: give --state PATH (a state file, a directory of them, or - for stdin) "
                    "and/or " + ", ".join(option.flag for option in _walk_options()))
    try:
        window = parse_duration(args.expiring_within) if args.expiring_within else DEFAULT_EXPIRY_WINDOW
    except ValueError as err:
        return fail(f"--expiring-within: {err}")
    if args.concurrency < 1:
        return fail("--concurrency must be at least 1")
    try:
        return _audit(args, stdin, stdout, stderr, now or datetime.datetime.now(datetime.UTC), window, core)
    except StateError as err:
        return fail(str(err))
    except TokendropError as err:
        return fail(f"{err.summary}: {err.detail}" if err.detail else err.summary)
    except Exception as err:  # exit 1 means "needs attention": a crash must not read as that
        return fail(f"unexpected error (a bug in tokendrop; please report it): {type(err).__name__}: {err}")


def _audit(args: argparse.Namespace, stdin: TextIO, stdout: TextIO, stderr: TextIO, now: datetime.datetime,
           window: datetime.timedelta, core: ProviderCore | None) -> int:
    from .collect import (
        Progress,
        Walk,
        check_settings,
        list_scopes,
        plan_targets,
        prepare,
        read_sinks,
        sink_refs,
        walk_organizations,
    )

    if core is None:
        from ..registry.clients import Clients
        from ..settings import Settings

        resolved = Settings.resolve({
            "tfe_address": args.tfe_address, "buildkite_rest_url": args.buildkite_rest_url,
            "tokenvault_api_url": args.tokenvault_api_url, "vault_address": args.vault_address,
            "vault_namespace": args.vault_namespace, "aws_region": args.aws_region, "aws_profile": args.aws_profile,
            "aws_endpoint_url_ssm": args.aws_endpoint_url_ssm})
        clients = Clients(lambda: resolved)
    else:
        clients = core.clients
    settings = clients.settings
    states = load_sources(args.state, stdin=stdin, buildkite_organization=settings.buildkite.organization)
    warnings = [f"{address} in {state.source} has no token id or no scope in state; it is not audited"
                + (" (set BUILDKITE_ORGANIZATION_SLUG for Buildkite tokens without an organization)"
                   if "buildkite" in address else "")
                for state in states.loaded for address in state.skipped]
    for warning in warnings:
        stderr.write(f"tokendrop audit: warning: {warning}\n")

    walk = Walk.from_args(args)
    tokens = states.tokens
    targets = plan_targets(states.scopes, walk)  # no calls: a malformed --approle-role fails first
    refs = [] if args.skip_sinks else [r for t in tokens for r in sink_refs(t)]
    issuers = {s.issuer for s in states.scopes}
    issuers |= walk.issuers
    check_settings(clients, issuers, {r.kind for r in refs})
    prepare(clients, issuers, {r.kind for r in refs})

    enabled = args.progress if args.progress is not None else stderr.isatty()
    progress = Progress(stderr, enabled=bool(enabled))
    try:
        walk_organizations(clients, walk, targets, progress)
        listings = list_scopes(clients, targets, walk, args.concurrency, progress)
        sinks = read_sinks(clients, refs, args.concurrency, progress) if refs else {}
    finally:
        progress.finish()

    report = evaluate(tokens, listings, sinks, now, window)
    if args.json:
        sources = [Source("state", s.source, s.format, len(s.tokens)) for s in states.loaded]
        from ..registry import issuers as registry

        for entry in registry.ISSUERS:
            option = entry.audit_walk
            for value in walk.values(entry.name) if option is not None else ():
                walked = option.switch_source(settings.group(entry.settings.name)) if option.switch_source else value
                sources.append(Source(option.source, walked))
        document = to_json(report, sources, list(listings.values()))
        document["warnings"] = warnings
        stdout.write(scrub(dumps(document)))
    else:
        stdout.write(scrub(table(report, show_state=len(states.loaded) > 1)))
    stdout.flush()
    return ATTENTION if report.attention else CLEAN
