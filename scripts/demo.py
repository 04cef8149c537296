"""`make demo`: deploy the CDKTF stacks against the local sandbox, show what was minted and where it went,
prove that no token value reached state, cdktf.out or cdktf's output, then destroy and stop the sandbox.

Usage: python scripts/demo.py [--project-dir DIR] [--cdktf PATH] [--keep]

Steps: `tokendrop sandbox up --detach` into a temporary state dir; `cdktf synth`; every stack of
cdktf.out/manifest.json is deployed with `cdktf deploy --auto-approve`; the summary comes from the
state files; sinks are read back from SSM and Vault; the canary scan asks the emulators' admin API
(`GET /_sandbox/minted`) for every value ever minted; `cdktf destroy`; the issuer and the stores are
checked again; the sandbox is stopped. Destroy and stop run on failure and Ctrl-C too. cdktf's own
output goes to log files, shown (the tail) only when a step fails. Exit code 0 means every check passed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tokendrop_provider import leaks

ROOT = Path(__file__).resolve().parent.parent

# Quiet, reproducible cdktf/terraform runs: no update checks, telemetry or plugin cache.
CDKTF_ENV = {
    "CHECKPOINT_DISABLE": "1",
    "DISABLE_VERSION_CHECK": "1",
    "CDKTF_DISABLE_PLUGIN_CACHE_ENV": "1",
    "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
    "CI": "1",
    "TF_CLI_CONFIG_FILE": "/dev/null",
}
# A developer's own credentials and settings must not steer (or be touched by) the demo.
SCRUBBED_PREFIXES = ("TFE_", "AWS_", "VAULT_", "BAO_", "BUILDKITE_", "TOKENVAULT_", "TF_", "CDKTF_",
                     "TOKENDROP_SANDBOX_")
# Resource kinds for the summary; token-like resources are recognised by their `sink_address`.
KIND_LABELS = {
    "tokendrop_tfe_agent_pool": "pool",
    "tokendrop_buildkite_cluster": "cluster",
    "tokendrop_tokenvault_agent": "agent",
    "tokendrop_entra_agent_blueprint": "Entra agent identity blueprint",
    "tokendrop_entra_agent_identity": "Entra agent identity",
}
CDKTF_TIMEOUT = 900  # seconds per cdktf command; a hung deploy must not hang CI forever
TAIL_LINES = 40


class DemoError(Exception):
    """A step failed; the message says which and what to look at."""


def say(line: str = "") -> None:
    print(line, flush=True)


# --- running commands ------------------------------------------------------------------------------


def run_logged(argv: Sequence[str], log: Path, *, env: Mapping[str, str], cwd: Path,
               timeout: float = CDKTF_TIMEOUT) -> int:
    """Run with output into `log`. The child gets its own process group: on Ctrl-C it receives one
    SIGINT (cdktf passes it to terraform, which lets in-flight provider calls finish) and up to a
    minute to stop, so no terraform keeps running behind the clean-up's back."""
    with open(log, "ab") as out:
        out.write(f"$ {' '.join(argv)}\n".encode())
        out.flush()
        proc = subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                cwd=cwd, env=dict(env), start_new_session=True)
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _stop_group(proc, signal.SIGINT, 30)
            raise DemoError(f"`{' '.join(argv[:2])}` took longer than {timeout:.0f}s; see {log}") from None
        except BaseException:
            _stop_group(proc, signal.SIGINT, 60)
            raise


def _stop_group(proc: subprocess.Popen[bytes], signum: int, grace: float) -> None:
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signum)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def tail(path: Path, lines: int = TAIL_LINES) -> str:
    """The end of a log, from its first error if there is one (terraform init's chatter before it helps
    nobody), indented."""
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return "    (no output)"
    first_error = next((i for i, line in enumerate(text) if "Error:" in line or "[ERROR]" in line), None)
    start = len(text) - lines if first_error is None else min(first_error, len(text) - 1)
    return "\n".join("    " + line for line in text[max(0, start):][:lines])


def http_json(url: str, timeout: float = 10.0, cafile: str | None = None) -> Any:
    if not url.startswith(("http://127.0.0.1:", "https://127.0.0.1:")):
        raise DemoError(f"refusing to call {url}: the sandbox lives on 127.0.0.1 only")
    # The Entra emulator serves https with the sandbox's own CA (msal refuses http).
    context = ssl.create_default_context(cafile=cafile) if url.startswith("https:") else None
    with urllib.request.urlopen(url, timeout=timeout, context=context) as response:  # noqa: S310 - loopback only
        return json.loads(response.read())


# --- the canary scan -------------------------------------------------------------------------------


# One scanner for the demo, the e2e tests and the provider: tokendrop_provider/leaks.py (raw, escaped,
# URL-encoded and base64 forms; zip members and gzip streams opened).
scan = leaks.scan_paths


# --- cdktf.json, the manifest and state --------------------------------------------------------------


@dataclass
class Stack:
    name: str
    working_dir: Path
    synthesized: Path
    dependencies: list[str]
    state_file: Path | None = None  # local backend only (the demo refuses others)
    resources: list[Resource] = field(default_factory=list)


@dataclass
class Resource:
    type: str
    name: str
    attributes: dict[str, Any]

    @property
    def delivers(self) -> bool:
        return bool(self.attributes.get("sink_address"))


def read_cdktf_json(project: Path) -> dict[str, Any]:
    path = project / "cdktf.json"
    if not path.exists():
        raise DemoError(f"no cdktf.json in {project}: there are no stacks to deploy yet")
    try:
        doc = json.loads(path.read_text())
    except ValueError as exc:
        raise DemoError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(doc, dict) or not doc.get("app"):
        raise DemoError(f"{path} has no \"app\" command")
    return doc


def read_manifest(outdir: Path) -> list[Stack]:
    path = outdir / "manifest.json"
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DemoError(f"cannot read {path} after `cdktf synth`: {exc}") from None
    stacks = [Stack(name, outdir / s["workingDirectory"], outdir / s["synthesizedStackPath"],
                    list(s.get("dependencies") or []))
              for name, s in (manifest.get("stacks") or {}).items()]
    if not stacks:
        raise DemoError(f"{path} lists no stacks: the app defines none")
    return _dependency_order(stacks)


def _dependency_order(stacks: list[Stack]) -> list[Stack]:
    by_name = {s.name: s for s in stacks}
    ordered: list[Stack] = []

    def visit(stack: Stack, path: tuple[str, ...]) -> None:
        if stack in ordered or stack.name in path:
            return
        for dep in stack.dependencies:
            if dep in by_name:
                visit(by_name[dep], (*path, stack.name))
        ordered.append(stack)

    for stack in stacks:
        visit(stack, ())
    return ordered


def find_state_file(stack: Stack) -> Path:
    """Where the stack's local backend keeps state; other backends are refused (the demo must not
    touch a real one)."""
    config = json.loads(stack.synthesized.read_text())
    backend = (config.get("terraform") or {}).get("backend") or {}
    if not backend:
        return stack.working_dir / "terraform.tfstate"  # terraform's default local backend
    if set(backend) != {"local"}:
        raise DemoError(f"stack {stack.name} uses the {', '.join(backend)} backend; the demo only deploys "
                        "stacks with a local backend")
    path = Path((backend["local"] or {}).get("path") or "terraform.tfstate")
    return path if path.is_absolute() else stack.working_dir / path


def read_resources(state_file: Path) -> list[Resource]:
    if not state_file.exists():
        return []
    state = json.loads(state_file.read_text())
    out = []
    for res in state.get("resources", []):
        if res.get("mode") != "managed":
            continue
        for inst in res.get("instances", []):
            out.append(Resource(res["type"], res["name"], inst.get("attributes") or {}))
    return out


# --- sinks ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sink:
    kind: str  # "ssm" or "vault_kv"
    name: str = ""  # ssm
    mount: str = ""  # vault_kv
    path: str = ""
    field: str = ""
    region: str = ""  # ssm: the sink's own region ("": the provider's, AWS_REGION)
    version: int | None = None  # the version state records as holding the live token

    @classmethod
    def all_of(cls, attrs: Mapping[str, Any]) -> list[Sink]:
        """Every sink of a resource's state (deliver_to one object or a list), defaults applied as the
        provider applies them, each with the version its entry of the `sinks` list records."""
        from tokendrop_provider.registry.sinks import all_in_state, chosen

        listed = attrs.get("sinks") or [{"version": attrs.get("sink_version")}]  # state before `sinks`
        out = []
        for block, entry in zip(all_in_state(attrs.get("deliver_to")), listed, strict=False):
            found = chosen(block)
            if found is None:
                continue
            kind, given = found
            location = kind.with_defaults(given)
            version = entry.get("version") if isinstance(entry, Mapping) else None
            out.append(cls(kind.name, **{name: str(location[name]) for name in kind.address_fields},
                           region=str(location.get("region") or ""),
                           version=int(version) if isinstance(version, int | float) else None))
        return out

    def describe(self) -> str:
        if self.kind == "ssm":
            return f"SSM parameter {self.name}" + (f" in {self.region}" if self.region else "")
        return f"Vault {self.mount}/{self.path} (field {self.field})"


class Stores:
    """Reads the sandbox's SSM and Vault directly (not through tokendrop) to check deliveries."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env
        self._ssm: dict[str, Any] = {}
        self._vault: Any = None

    def ssm(self, region: str = "") -> Any:
        """An SSM client of `region` (moto keeps each region's parameters apart, as AWS does)."""
        region = region or self.env["AWS_REGION"]
        if region not in self._ssm:
            import boto3

            self._ssm[region] = boto3.client(
                "ssm", endpoint_url=self.env["AWS_ENDPOINT_URL_SSM"], region_name=region,
                aws_access_key_id=self.env["AWS_ACCESS_KEY_ID"],
                aws_secret_access_key=self.env["AWS_SECRET_ACCESS_KEY"])
        return self._ssm[region]

    def vault(self) -> Any:
        if self._vault is None:
            import requests

            self._vault = requests.Session()
            self._vault.headers["X-Vault-Token"] = self.env["VAULT_TOKEN"]
        return self._vault

    def read(self, sink: Sink) -> tuple[str, int] | None:
        """(secret, version) the sink holds now, or None if it is gone."""
        if sink.kind == "ssm":
            client = self.ssm(sink.region)
            try:
                p = client.get_parameter(Name=sink.name, WithDecryption=True)["Parameter"]
            except client.exceptions.ParameterNotFound:
                return None
            value: Any = str(p["Value"])
            with contextlib.suppress(ValueError):  # AppRole and Entra deliver JSON objects (SECRET_KEYS)
                decoded = json.loads(value)
                if isinstance(decoded, dict) and any(key in decoded for key in SECRET_KEYS):
                    value = decoded
            return _secret_in(value, sink.field), int(p["Version"])
        # KV v2 read (docs/wire.md, "Vault"): 404 when never written or the current version is deleted.
        reply = self.vault().get(f"{self.env['VAULT_ADDR'].rstrip('/')}/v1/{sink.mount}/data/{sink.path}",
                                 timeout=30)
        if reply.status_code == 404:
            return None
        reply.raise_for_status()
        held = reply.json()["data"]
        return _secret_in(held["data"], sink.field), int(held["metadata"]["version"])


# The secret of a delivery that is an object: an AppRole secret id (beside its role id), an Entra blueprint's
# client secret or certificate key (beside client_id, tenant_id, token_endpoint, certificate: no secrets).
SECRET_KEYS = ("secret_id", "client_secret", "private_key")


def _secret_in(held: Any, field: str) -> str:
    """The secret in what a sink holds: the value itself, the configured field of a KV secret, or the
    secret of an object delivery (SECRET_KEYS)."""
    if isinstance(held, dict):
        key = next((k for k in SECRET_KEYS if k in held), field)
        return str(held.get(key, ""))
    return str(held)


# --- the demo ----------------------------------------------------------------------------------------------


@dataclass
class Minted:
    id: str
    value: str
    revoked: bool
    emulator: str
    scope: str = ""  # what it was minted for (pool, cluster, or the agent whose key it is)
    created_at: float = 0.0


def minted_for(minted: Mapping[str, Minted], resource_id: str) -> Minted | None:
    """The minted value behind a resource in state: the token with that id or, for a resource whose id
    outlives its keys (a Token Vault agent), the newest live value minted for it."""
    if resource_id in minted:
        return minted[resource_id]
    live = [m for m in minted.values() if m.scope == resource_id and not m.revoked]
    return max(live, key=lambda m: m.created_at) if live else None


class Demo:
    def __init__(self, project: Path, cdktf: Path, work: Path) -> None:
        self.project = project
        self.cdktf = cdktf
        self.work = work
        self.logs = work / "logs"
        self.sandbox_dir = work / "sandbox"
        self.cdktf_home = work / "cdktf-home"
        self.outdir = project / str(read_cdktf_json(project).get("output") or "cdktf.out")
        self.sandbox: dict[str, Any] | None = None
        self.env: dict[str, str] = {}
        self.stacks: list[Stack] = []
        self.deploy_started = False
        self.destroyed = False
        self.created_state_files: list[Path] = []
        self.delivered: dict[str, str] = {}  # label -> value read back from a sink
        self.logs.mkdir(parents=True)
        self.cdktf_home.mkdir()

    # -- sandbox ------------------------------------------------------------------------------------

    def tokendrop(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "tokendrop_provider.cli", *args], capture_output=True,
                              text=True, check=False, env=self._base_env(), timeout=120)

    def start_sandbox(self) -> None:
        started = self.tokendrop("sandbox", "up", "--detach", "--state-dir", str(self.sandbox_dir))
        (self.logs / "sandbox-up.log").write_text(started.stdout + started.stderr)
        if started.returncode != 0:
            raise DemoError("the sandbox did not start:\n" + "\n".join(
                "    " + line for line in started.stderr.strip().splitlines()))
        self.sandbox = json.loads((self.sandbox_dir / "sandbox.json").read_text())
        self.env = {**self._base_env(), **self.sandbox["env"], **CDKTF_ENV, "CDKTF_HOME": str(self.cdktf_home)}
        names = ", ".join(p["name"] for p in self.sandbox["processes"])
        say(f"Sandbox up: {names} on 127.0.0.1 (logs in {self.sandbox_dir / 'logs'})")

    def stop_sandbox(self) -> bool:
        if self.sandbox is None and not (self.sandbox_dir / "sandbox.json").exists():
            return True
        stopped = self.tokendrop("sandbox", "down", "--state-dir", str(self.sandbox_dir))
        (self.logs / "sandbox-down.log").write_text(stopped.stdout + stopped.stderr)
        if stopped.returncode != 0:
            say(f"Could not stop the sandbox:\n{stopped.stdout}{stopped.stderr}")
            return False
        say("Sandbox stopped.")
        return True

    def _base_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(SCRUBBED_PREFIXES)}
        # The app's `python` and terraform's provider launcher must come from this environment.
        env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
        env.setdefault("PYTHONUNBUFFERED", "1")
        return env

    def emulators(self) -> list[dict[str, Any]]:
        assert self.sandbox is not None
        return [p for p in self.sandbox["processes"] if p["kind"] == "emulator"]

    def minted(self) -> dict[str, Minted]:
        """Every token any emulator ever minted, by id (the admin API, not part of the emulated APIs)."""
        out: dict[str, Minted] = {}
        for emulator in self.emulators():
            ca = (emulator.get("env") or {}).get("TOKENDROP_ENTRA_CA_CERT")
            for m in http_json(f"{emulator['url']}/_sandbox/minted", cafile=ca)["minted"]:
                out[m["id"]] = Minted(m["id"], m["value"], bool(m["revoked"]), emulator["name"],
                                      str(m.get("scope") or ""), float(m.get("created_at") or 0))
        return out

    def credentials(self) -> dict[str, str]:
        """The sandbox's own API credentials: they must not land in state either."""
        return {f"credential {k}": v for k, v in self.env.items()
                if k in (self.sandbox or {}).get("env", {}) and len(v) >= 16
                and k.endswith(("_TOKEN", "_API_KEY", "_SECRET"))}

    # -- cdktf --------------------------------------------------------------------------------------

    def run_cdktf(self, step: str, *args: str) -> float:
        log = self.logs / f"cdktf-{step}.log"
        started = time.monotonic()
        code = run_logged([str(self.cdktf), step, *args], log, env=self.env, cwd=self.project)
        if code != 0:
            raise DemoError(f"cdktf {step} failed (exit code {code}); from {log}:\n{tail(log)}")
        return time.monotonic() - started

    def synth(self) -> None:
        self.run_cdktf("synth")
        self.stacks = read_manifest(self.outdir)
        for stack in self.stacks:
            stack.state_file = find_state_file(stack)
            leftovers = read_resources(stack.state_file)
            if leftovers:
                raise DemoError(f"{stack.state_file} already holds {len(leftovers)} resources from an earlier "
                                f"deploy; the demo will not touch them. Destroy that stack or move the file away.")
            if not stack.state_file.exists():
                self.created_state_files.append(stack.state_file)

    def deploy(self) -> None:
        names = [s.name for s in self.stacks]
        say(f"Deploying {len(names)} stack{'s' * (len(names) != 1)} ({', '.join(names)}) with cdktf…")
        self.deploy_started = True
        seconds = self.run_cdktf("deploy", *names, "--auto-approve", "--skip-synth", "--skip-provider-lock",
                                 "--no-color")
        for stack in self.stacks:
            assert stack.state_file is not None
            stack.resources = read_resources(stack.state_file)
        count = sum(len(s.resources) for s in self.stacks)
        say(f"Deployed in {seconds:.1f}s: {count} resources.")

    def destroy(self) -> float:
        names = [s.name for s in self.stacks]
        seconds = self.run_cdktf("destroy", *names, "--auto-approve", "--skip-synth", "--no-color")
        self.destroyed = True
        return seconds

    # -- what was deployed --------------------------------------------------------------------------

    def tokens(self) -> list[tuple[Stack, Resource, list[Sink]]]:
        return [(s, r, Sink.all_of(r.attributes)) for s in self.stacks for r in s.resources if r.delivers]

    def print_summary(self) -> None:
        for stack in self.stacks:
            say(f"Stack {stack.name}:")
            owners = [r for r in stack.resources if not r.delivers]
            tokens = [r for r in stack.resources if r.delivers]
            placed: set[int] = set()
            for owner in owners:
                say(f"  {_describe_owner(owner)}")
                owner_id = owner.attributes.get("id")
                for i, token in enumerate(tokens):
                    if i not in placed and owner_id and owner_id in _strings(token.attributes, skip="id"):
                        placed.add(i)
                        say(f"    {_describe_token(token)}")
            for i, token in enumerate(tokens):
                if i not in placed:
                    say(f"  {_describe_token(token)}")
            if not stack.resources:
                say("  (no resources)")

    def check_deliveries(self, stores: Stores, minted: Mapping[str, Minted]) -> None:
        """Every sink holds exactly the live value the issuer minted for the token in state."""
        problems = []
        checked = unchecked = 0
        regions: list[str] = []  # tokens delivered to SSM in several regions, each read back there
        for stack, res, sinks in self.tokens():
            token_id = str(res.attributes.get("id"))
            if not sinks:
                unchecked += 1
                continue
            for sink in sinks:
                if self._check_sink(stores, minted, f"{stack.name}: {sink.describe()}", token_id, sink, problems):
                    checked += 1
                else:
                    unchecked += 1
            read_in = sorted({s.region for s in sinks if s.kind == "ssm" and s.region})
            if len(read_in) > 1:
                names = " and ".join(sorted({s.name for s in sinks if s.kind == "ssm" and s.region}))
                regions.append(f"{stack.name}: token {token_id} in SSM parameter {names} in {', '.join(read_in)}")
        if problems:
            raise DemoError("delivery check failed:\n" + "\n".join("    " + p for p in problems))
        if checked:
            note = f" ({unchecked} issued outside the emulators: not compared)" if unchecked else ""
            say(f"Read back from the stores: each of the {checked} sinks holds its token's live value{note}.")
        for line in regions:  # the Elastic CI Stack case: one token, a parameter per region
            say(f"One token, several regions, each read back there: {line}.")

    def _check_sink(self, stores: Stores, minted: Mapping[str, Minted], where: str, token_id: str, sink: Sink,
                    problems: list[str]) -> bool:
        """Read one sink back and compare it with the minted value (problems appended); False when the
        token was issued by something the sandbox does not emulate (Vault AppRole): not compared."""
        held = stores.read(sink)
        if held is not None and held[0]:
            # Whoever issued it (OpenBao issues AppRole secret ids), it must not leak either.
            self.delivered[f"value delivered to {where}"] = held[0]
        record = minted_for(minted, token_id)
        if record is None:
            return False
        if held is None:
            problems.append(f"{where} is missing")
        elif held[0] != record.value:
            problems.append(f"{where} does not hold the value minted for {token_id}")
        elif held[1] != sink.version:
            problems.append(f"{where} is at version {held[1]}, state says {sink.version}")
        elif record.revoked:
            problems.append(f"{token_id} in {where} is revoked at the issuer")
        return True

    def scan_paths(self) -> list[Path]:
        # cdktf's captured output, not the sandbox's own logs (which print its credentials on purpose).
        paths: list[Path] = [self.outdir, *sorted(self.logs.glob("cdktf-*.log"))]
        for stack in self.stacks:
            if stack.state_file is not None:
                paths += sorted(stack.state_file.parent.glob(stack.state_file.name + "*"))  # + .backup
        paths += sorted(self.project.glob("*.tfstate*"))
        return paths

    def scan_for_leaks(self, minted: Mapping[str, Minted], final: bool = False) -> None:
        secrets = {f"token {m.id} ({m.emulator})": m.value for m in minted.values()}
        known = set(secrets.values())
        secrets.update({label: v for label, v in self.delivered.items() if v not in known})
        secrets_and_creds = {**secrets, **self.credentials()}
        result = scan(secrets_and_creds, self.scan_paths())
        if result.hits:
            lines = [f"    {hit.label} found in {hit.artifact}" for hit in result.hits]
            raise DemoError("secret values leaked:\n" + "\n".join(lines))
        if not final:
            what = f"{len(secrets)} token value{'s' * (len(secrets) != 1)}"
            if not secrets:
                raise DemoError("no token was minted, so there is nothing to scan for: do the stacks define tokens?")
            creds = len(secrets_and_creds) - len(secrets)
            plans = f", {result.archives} archive members opened" if result.archives else ""
            say(f"No token value in state, cdktf.out or cdktf's output: scanned {result.files} files{plans} "
                f"for {what} and {creds} sandbox credentials.")

    def check_destroyed(self, stores: Stores, sinks: Sequence[Sink], seconds: float) -> None:
        minted = self.minted()
        live = [m.id for m in minted.values() if not m.revoked]
        remaining = [s.describe() for s in sinks if stores.read(s) is not None]
        if live or remaining:
            raise DemoError("destroy left things behind:" + "".join(
                [f"\n    token {t} is still valid at the issuer" for t in live]
                + [f"\n    {s} still exists" for s in remaining]))
        self.scan_for_leaks(minted, final=True)  # destroy's output and the final state, too
        say(f"Destroyed in {seconds:.1f}s: {len(minted)} of {len(minted)} tokens revoked at the issuer, "
            f"{len(sinks)} sinks removed (checked in SSM and Vault).")

    # -- the whole run ------------------------------------------------------------------------------

    def run(self) -> None:
        self.start_sandbox()
        self.synth()
        self.deploy()
        self.print_summary()
        stores = Stores(self.env)
        minted = self.minted()
        self.check_deliveries(stores, minted)
        self.scan_for_leaks(minted)
        sinks = [sink for _, _, token_sinks in self.tokens() for sink in token_sinks]
        seconds = self.destroy()
        self.check_destroyed(stores, sinks, seconds)

    def clean_up(self) -> bool:
        """Destroy (if a deploy started and was not destroyed) and stop the sandbox; True if both worked."""
        ok = True
        if self.deploy_started and not self.destroyed:
            say("Destroying what was deployed…")
            try:
                say(f"Destroyed in {self.destroy():.1f}s.")
            except DemoError as exc:
                say(str(exc))
                ok = False
        if self.destroyed:
            for path in self.created_state_files:  # empty now; the demo leaves the checkout as it was
                for leftover in path.parent.glob(path.name + "*"):
                    leftover.unlink()
        return self.stop_sandbox() and ok


def _strings(value: Any, skip: str = "") -> set[str]:
    """Every string inside an attribute tree (to find which pool a token belongs to)."""
    if isinstance(value, str):
        return {value}
    if isinstance(value, dict):
        return set().union(*(_strings(v) for k, v in value.items() if k != skip)) if value else set()
    if isinstance(value, list):
        return set().union(*(_strings(v) for v in value)) if value else set()
    return set()


def _describe_owner(res: Resource) -> str:
    a = res.attributes
    label = KIND_LABELS.get(res.type, res.type.removeprefix("tokendrop_"))
    text = f"{label} {a.get('name') or res.name} ({a.get('id')})"
    if a.get("organization"):
        text += f" in organization {a['organization']}"
    return text


def _describe_token(res: Resource) -> str:
    a = res.attributes
    sinks = Sink.all_of(a)
    if len(sinks) > 1:  # every sink with its own version: "SSM parameter /x in eu-west-1, version 1; …"
        versions = "; ".join(f"{s.describe()}, version {s.version}" for s in sinks[:-1])
        where, a = f"{versions}; {sinks[-1].describe()}", {**a, "sink_version": sinks[-1].version}
    else:
        where = sinks[0].describe() if sinks else str(a.get("sink_address"))
    label = KIND_LABELS.get(res.type, "token")
    if res.type == "tokendrop_vault_approle_secret_id":
        return (f"AppRole secret id for role {a.get('role_name')} (accessor {a.get('id')}) + role id -> {where}, "
                f"version {a.get('sink_version')}")
    if label == "token":
        return f"token {a.get('id')} -> {where}, version {a.get('sink_version')}"
    # A resource that delivers its own key (a Token Vault agent): name it, then where its key went.
    grants = ", ".join(str(g.get("service")) for g in a.get("grants") or [] if isinstance(g, dict))
    with_grants = f" with grants {grants}" if grants else ""
    return (f"{label} {a.get('name') or res.name} ({a.get('id')}){with_grants}; key -> {where}, "
            f"version {a.get('sink_version')}")


def default_cdktf(project: Path) -> Path:
    for base in (project, ROOT):
        candidate = base / "node_modules" / ".bin" / "cdktf"
        if candidate.exists():
            return candidate
    return project / "node_modules" / ".bin" / "cdktf"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--project-dir", type=Path, default=ROOT, help="directory of cdktf.json (default: the repo)")
    parser.add_argument("--cdktf", type=Path, help="the cdktf CLI (default: node_modules/.bin/cdktf)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (logs) even on success")
    args = parser.parse_args(argv)
    project = args.project_dir.resolve()
    cdktf = (args.cdktf or default_cdktf(project)).absolute()
    if not cdktf.exists():
        say(f"demo: {cdktf} not found: run `npm ci` (make demo does) to install cdktf-cli")
        return 2
    if shutil.which("terraform") is None:
        say("demo: terraform is not on PATH: cdktf needs the terraform binary (1.11 or later)")
        return 2
    # SIGTERM (CI cancelling the job) must clean up like Ctrl-C does.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    work = Path(tempfile.mkdtemp(prefix="tokendrop-demo-"))
    ok = False
    try:
        demo = Demo(project, cdktf, work)
    except DemoError as exc:
        say(f"demo: {exc}")
        shutil.rmtree(work, ignore_errors=True)
        return 1
    say(f"tokendrop demo: {project / 'cdktf.json'}")
    try:
        demo.run()
        ok = True
    except DemoError as exc:
        say(f"FAILED: {exc}")
    except KeyboardInterrupt:
        say("Interrupted; cleaning up.")
    finally:
        try:
            cleaned = demo.clean_up()
        except KeyboardInterrupt:
            cleaned = False
            say(f"Clean-up interrupted: stop the sandbox with `tokendrop sandbox down --state-dir {demo.sandbox_dir}`")
        ok = ok and cleaned
    if ok and not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    else:
        say(f"Logs kept in {demo.logs}")
    say("Demo passed." if ok else "Demo FAILED.")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
