"""What the rest of the program asks of an issuer or a sink, declared once per issuer / sink.

An `Issuer` entry names its settings (with their environment variables), the check that they are set,
its client factory, a label, its resource types and how each token resource derives its scope. A
`SinkKind` entry names its `deliver_to` block, settings, check, factory (`from_config`), and how its
address is formatted and parsed. The provider, the audit and the docs generator loop over the
registries (`registry/issuers.py`, `registry/sinks.py`); nothing else lists issuers or sinks.
"""

from __future__ import annotations

import dataclasses
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from ..attributes import Attr
from ..errors import ConfigError
from ..settings import AwsSettings, Setting, Settings, SettingsGroup

if TYPE_CHECKING:
    from ..issuers.base import IssuedToken
    from ..resources.base import Resource
    from ..sinks.base import Sink, SinkStatus

C = TypeVar("C")
StateAttributes = Mapping[str, Any]
# The audit's fan-out: (progress label, items, work on one item, describe one item) -> results in order,
# a few at a time.
Fanout = Callable[[str, Sequence[Any], Callable[[Any], Any], Callable[[Any], str]], list[Any]]


def missing_setting(summary: str, setting: Setting, also: str = "") -> ConfigError:
    """The error for a setting that must be set: names the environment variable first (the audit has
    no provider block) and the provider-block attribute, which the diagnostic points at."""
    env = f"the {setting.env[0]} environment variable" if setting.env else "it"
    return ConfigError(summary, f"Set {env} (or {setting.name} in the provider block){also}.", (setting.name,))


@dataclass(frozen=True)
class AuditWalk(Generic[C]):
    """The `tokendrop audit` option that lists this issuer's scopes beyond those the states name."""

    flag: str  # e.g. "--tfe-organization"; its argparse destination is the name with underscores
    help: str
    source: str  # the type of its entries in the JSON report's `sources`, e.g. "tfe_organization"
    metavar: str | None = None  # None: a switch (walk everything the credentials see; see `list_account`)
    what: str = ""  # what a value names, for errors, e.g. "TFE organization"
    # (client, value) -> (scope, display name) of every scope under value; IssuerNotFound if none
    scopes: Callable[[C, str], Sequence[tuple[str, str | None]]] | None = None
    not_found: str = ""  # why `scopes` may answer "not found", for the error
    # value -> the one scope it names, without a call; ConfigError if it is malformed
    scope: Callable[[str], str] | None = None
    # a switch: (the issuer's settings) -> what the JSON report names as walked, e.g. the account's URL
    switch_source: Callable[[Any], str] | None = None

    @property
    def dest(self) -> str:
        return self.flag.lstrip("-").replace("-", "_")


@dataclass(frozen=True)
class Issuer(Generic[C]):
    """One issuer. `C` is the type of its client, so that `Clients.of(issuer)` is typed."""

    name: str  # its `TokenIssuer.kind`; the audit's issuer column and marker prefix
    label: str  # for people, e.g. "HCP Terraform / TFE"
    scope_label: str  # what a scope is, e.g. "agent pool"
    settings: SettingsGroup[Any]
    # (its settings group, cancel event) -> client; imports the client module on first use only
    client: Callable[[Any, threading.Event], C]
    # its settings -> the error for the first one missing, or None
    check: Callable[[Any], ConfigError | None]
    # the resource types it serves (a function: resource modules import this package's entries)
    resources: Callable[[], Sequence[Resource]]
    # token resource type -> scope of a state instance ((attributes, settings) -> scope, None if unknown)
    token_scopes: Mapping[str, Callable[[StateAttributes, Settings], str | None]] = field(default_factory=dict)
    # scope resource type -> (scope, display name) of a state instance, listed even without tokens
    scope_resources: Mapping[str, Callable[[StateAttributes], tuple[str, str | None] | None]] = field(
        default_factory=dict)
    # (client, scope) -> every token of the scope, expired ones included; None: listed another way
    list_tokens: Callable[[C, str], Sequence[IssuedToken]] | None = None
    # scopes listed together instead (e.g. one account-wide list): (client, the scopes the states name,
    # whether the audit walks every scope, fan-out) -> tokens by scope
    list_account: Callable[[C, set[str], bool, Fanout], Mapping[str, Mapping[str, IssuedToken]]] | None = None
    audit_walk: AuditWalk[C] | None = None  # the audit's option that lists scopes beyond the states
    reports_last_use: bool = False  # its tokens carry a last-use time the audit can judge
    # modules its client needs, imported on one thread before the audit lists scopes in parallel
    libraries: tuple[str, ...] = ()


@dataclass(frozen=True)
class SinkKind:
    """One kind of sink: the `deliver_to` block named `attribute.name` (also the address prefix)."""

    attribute: Attr  # its nested attribute in the schema: defaults are read from here
    settings: SettingsGroup[Any]
    check: Callable[[Settings, Callable[[object, Callable[[], Any]], Any]], ConfigError | None]
    # (location, settings) -> the sink; location is the `deliver_to` block, defaults applied
    from_config: Callable[[Mapping[str, Any], Settings], Sink]
    # location -> the part of the address after "<kind>:" (values known, defaults applied)
    address: Callable[[Mapping[str, Any]], str]
    # the part after "<kind>:" -> location, or None if malformed
    parse_address: Callable[[str], dict[str, Any] | None]
    address_format: str  # for error messages, e.g. "ssm:<parameter name>"
    address_fields: tuple[str, ...]  # the block's attributes the address is made of
    # metadata of many locations at once (the audit): (locations, settings) -> statuses, in order
    statuses: Callable[[Sequence[Mapping[str, Any]], Settings], Sequence[SinkStatus]] | None = None
    batch: int = 1  # how many locations one `statuses` call takes
    # the sink can tell, without side effects, whether its credentials may write a location: a plan
    # then calls its `missing_capabilities()` for each new location
    checks_access_at_plan: bool = False
    # modules the sink's client needs, imported on one thread before the audit reads sinks in parallel
    libraries: tuple[str, ...] = ()
    # rules a plan can judge only with the settings: (location, settings) -> the error, or None
    check_location: Callable[[Mapping[str, Any], Settings], ConfigError | None] | None = None

    @property
    def name(self) -> str:
        return self.attribute.name

    def defaults(self) -> dict[str, Any]:
        """The schema's defaults of the block's attributes."""
        return {a.name: a.default for a in self.attribute.nested or () if a.default is not None}

    def with_defaults(self, location: Mapping[str, Any]) -> dict[str, Any]:
        return {**self.defaults(), **{k: v for k, v in location.items() if v is not None}}


_AWS_LOCATION = re.compile(r"(?:(\d{12}):)?(?:([a-z]{2}(?:-[a-z]+)+-\d{1,2}):)?(.+)")


def regional_address(location: Mapping[str, Any]) -> str:
    """The address part of an AWS location: its name, after `<region>:` when the sink names its own
    region and `<account>:` when it is reached through a role of another account (the same name can
    exist in several regions and accounts; neither SSM nor Secrets Manager names contain `:`)."""
    from ..sinks.aws_rules import role_account, validate_role_arn

    region, role = location.get("region"), location.get("assume_role_arn")
    account = role_account(role) if isinstance(role, str) and validate_role_arn(role) is None else None
    return "".join(f"{part}:" for part in (account, region) if part) + str(location["name"])


def address_scope(location: Mapping[str, Any]) -> str | None:
    """What `regional_address` puts before the name ("<account>:<region>", "<region>"), or None."""
    full, name = regional_address(location), str(location["name"])
    return full[:-len(name) - 1] if full != name else None


def parse_regional(rest: str) -> tuple[str | None, str]:
    """(region or None, name): the inverse of `regional_address` (an account in the address is left
    out: the role comes from the configuration)."""
    found = _AWS_LOCATION.fullmatch(rest)
    return (found.group(2), found.group(3)) if found else (None, rest)


def with_region(aws: AwsSettings, location: Mapping[str, Any]) -> AwsSettings:
    """The AWS settings of one location: the provider's, in the location's own region if it names one,
    through the location's role if it names one (`role_session_name`: set by `Clients.sink`)."""
    changes: dict[str, Any] = {}
    if location.get("region"):
        changes["region"] = str(location["region"])
    if location.get("assume_role_arn"):
        changes["assume_role_arn"] = str(location["assume_role_arn"])
        changes["role_session_name"] = str(location.get("role_session_name") or "tokendrop")
    return dataclasses.replace(aws, **changes) if changes else aws


def text(value: object) -> str | None:
    """A non-empty string from state, else None."""
    return value if isinstance(value, str) and value else None
