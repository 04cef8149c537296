"""Start, track and stop the whole local sandbox: moto (SSM), OpenBao (Vault) and the issuer emulators.

Every server is a subprocess in its own session (a terminal Ctrl-C reaches only the supervisor, which
then stops them in order), bound to 127.0.0.1 on a free port, with its output in a log file under the
state directory. A detached sandbox outlives the command that started it; the state file
(`<state dir>/sandbox.json`, mode 0600 because it holds the sandbox's tokens) records what runs:

    {
      "version": 1, "mode": "detached" | "foreground", "state_dir": "/abs/dir",
      "started_at": "2026-01-01T12:00:00Z",
      "supervisor": null | {"pid": 1, "start_time": 123, "cmdline": [...]},
      "env": {"TFE_ADDRESS": "...", ...},
      "processes": [{"name": "tfe", "kind": "emulator", "title": "...", "pid": 2, "url": "http://127.0.0.1:N",
                     "health_url": "...", "log": "/abs/dir/logs/tfe.log", "start_time": 456,
                     "cmdline": [...], "env": {...}}, ...]
    }

`start_time` (clock ticks since boot, /proc/<pid>/stat) and `cmdline` identify a process: `down` never
signals a pid whose identity changed since it was recorded (the pid was reused).

Adding an emulator is one `EmulatorSpec` in `EMULATORS`. Its module must run with
`python -m <module> --port 0 --ready-file PATH` (see `emulator.run_cli`), write the ready file once
listening (JSON with `url`, `pid` and an `env` object holding every variable named in `exports`), and
answer `GET /_sandbox/health`. An emulator on https (Entra's) exports its CA bundle as `CA_ENV`.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import json
import os
import re
import select
import shlex
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..errors import TokendropError
from ..timestamps import format_rfc3339
from .servers import TEST_AWS_ENV, ServerHandle, ServerStartError, start_moto, start_openbao

LOOPBACK = "127.0.0.1"
STATE_FILE = "sandbox.json"
STATE_VERSION = 1
DEFAULT_STATE_DIR = ".tokendrop"
STATE_DIR_ENV = "TOKENDROP_SANDBOX_DIR"
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
PROC = Path("/proc")


class SandboxError(TokendropError):
    """The sandbox could not be started, inspected or stopped; the message says what to do."""


# --- the registry ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class EmulatorSpec:
    """An issuer emulator the sandbox runs as `python -m <module> --port 0 --ready-file PATH <args>`."""

    name: str
    module: str
    title: str  # one line for the summary
    exports: tuple[str, ...]  # variables its ready file's `env` must hold
    args: tuple[str, ...] = ()


EMULATORS: list[EmulatorSpec] = [
    EmulatorSpec("tfe", "tokendrop_provider.sandbox.tfe", "HCP Terraform / TFE API (organization acme)",
                 ("TFE_ADDRESS", "TFE_TOKEN")),
    EmulatorSpec("buildkite", "tokendrop_provider.sandbox.buildkite", "Buildkite REST API (organization acme)",
                 ("BUILDKITE_REST_URL", "BUILDKITE_API_TOKEN", "BUILDKITE_ORGANIZATION_SLUG")),
    EmulatorSpec("tokenvault", "tokendrop_provider.sandbox.tokenvault",
                 "Token Vault API (agents, grants; services github, linear, slack, …) in Webhook Mode, with the "
                 "reference webhook", ("TOKENVAULT_API_URL", "TOKENVAULT_API_KEY", "TOKENVAULT_WEBHOOK_URL"),
                 ("--webhook",)),
    EmulatorSpec("entra", "tokendrop_provider.sandbox.entra",
                 "Microsoft Graph agent identities + Entra token endpoint (https, own CA)",
                 ("ARM_TENANT_ID", "ARM_CLIENT_ID", "ARM_CLIENT_SECRET", "AZURE_AUTHORITY_HOST",
                  "TOKENDROP_ENTRA_GRAPH_URL", "TOKENDROP_ENTRA_CA_CERT")),
]
# An emulator serving https (Entra: msal refuses http) exports the CA its certificate chains to here.
CA_ENV = "TOKENDROP_ENTRA_CA_CERT"

# boto3 and aws-cli v1 read AWS_DEFAULT_REGION only; the provider and aws-cli v2 read AWS_REGION.
AWS_ENV = {**TEST_AWS_ENV, "AWS_DEFAULT_REGION": TEST_AWS_ENV["AWS_REGION"]}


# --- process identity ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Identity:
    start_time: int  # clock ticks after boot: with the pid, unique for the machine's uptime
    cmdline: tuple[str, ...]


def identity(pid: int) -> Identity | None:
    """The live process `pid` (None if there is none, or only a zombie is left)."""
    try:
        stat = (PROC / str(pid) / "stat").read_text()
        raw = (PROC / str(pid) / "cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError):
        return None
    except OSError as exc:
        if not PROC.is_dir():
            raise SandboxError("the sandbox needs /proc to tell its processes apart (Linux only)") from exc
        return None
    # comm (field 2) may hold spaces and parentheses: the fields after it follow the last ")".
    fields = stat[stat.rindex(")") + 2:].split()
    if fields[0] in ("Z", "X"):
        return None
    return Identity(int(fields[19]), tuple(a.decode(errors="replace") for a in raw.split(b"\0")[:-1]))


RUNNING, GONE, REUSED = "running", "gone", "reused"


def process_state(pid: int, start_time: int, cmdline: Sequence[str]) -> str:
    """RUNNING: the very process we started; GONE: it exited; REUSED: the pid now names another one."""
    found = identity(pid)
    if found is None:
        _reap(pid)
        return GONE
    if found.start_time != start_time or found.cmdline != tuple(cmdline):
        return REUSED
    return RUNNING


def _reap(pid: int) -> None:
    # Only succeeds for our own children (tests run `up` in-process); a no-op otherwise.
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def stop_pid(pid: int, start_time: int, cmdline: Sequence[str], timeout: float = STOP_TIMEOUT) -> str:
    """SIGTERM the process if it still is the one recorded, SIGKILL it after `timeout`.

    Returns "stopped", "killed", GONE (already exited) or REUSED (left alone). A pidfd pins the
    process between the identity check and the signal, so a pid reused in between is never hit."""
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        _reap(pid)
        return GONE
    except (OSError, AttributeError):  # no pidfd (old kernel): the identity check alone has to do
        pidfd = None
    try:
        state = process_state(pid, start_time, cmdline)
        if state != RUNNING:
            return state
        _signal(pid, pidfd, signal.SIGTERM)
        if _wait_exit(pid, pidfd, timeout):
            return "stopped"
        _signal(pid, pidfd, signal.SIGKILL)
        if _wait_exit(pid, pidfd, 5.0):
            return "killed"
        raise SandboxError(f"pid {pid} survived SIGKILL", f"it may be stuck in the kernel; check `ps -p {pid}`")
    finally:
        if pidfd is not None:
            os.close(pidfd)


def _signal(pid: int, pidfd: int | None, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        if pidfd is not None:
            signal.pidfd_send_signal(pidfd, signum)
        else:
            os.kill(pid, signum)


def _wait_exit(pid: int, pidfd: int | None, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if pidfd is not None:
            # A pidfd turns readable when the process exits, whether or not it is our child.
            if select.select([pidfd], [], [], max(0.0, min(left, 0.2)))[0]:
                _reap(pid)
                return True
        elif identity(pid) is None:
            _reap(pid)
            return True
        else:
            time.sleep(min(0.05, max(0.0, left)))
        if left <= 0:
            return False


# --- the state file --------------------------------------------------------------------------------


@dataclass
class ProcessRecord:
    name: str
    kind: str  # "store" (moto, OpenBao) or "emulator"
    title: str
    pid: int
    url: str
    health_url: str
    log: str
    start_time: int
    cmdline: list[str]
    env: dict[str, str] = field(default_factory=dict)

    def state(self) -> str:
        return process_state(self.pid, self.start_time, self.cmdline)

    def healthy(self, timeout: float = 2.0) -> bool:
        return http_ok(self.health_url, timeout, self.env.get(CA_ENV))

    def stop(self, timeout: float = STOP_TIMEOUT) -> str:
        return stop_pid(self.pid, self.start_time, self.cmdline, timeout)


@dataclass
class SandboxState:
    state_dir: str
    mode: str  # "detached" or "foreground"
    started_at: str
    processes: list[ProcessRecord]
    supervisor: dict[str, Any] | None = None  # the foreground `up` process: pid, start_time, cmdline
    version: int = STATE_VERSION

    @property
    def env(self) -> dict[str, str]:
        merged: dict[str, str] = {}
        # Issuers first, then the stores: the order a reader expects.
        for p in sorted(self.processes, key=lambda p: p.kind != "emulator"):
            merged.update(p.env)
        # Lets `tokendrop sandbox env/status/down` in the same shell find this sandbox after an eval.
        merged[STATE_DIR_ENV] = self.state_dir
        return merged

    def to_json(self) -> dict[str, Any]:
        return {"version": self.version, "mode": self.mode, "state_dir": self.state_dir,
                "started_at": self.started_at, "supervisor": self.supervisor, "env": self.env,
                "processes": [asdict(p) for p in self.processes]}

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> SandboxState:
        if doc.get("version") != STATE_VERSION:
            raise ValueError(f"unknown state file version {doc.get('version')!r}")
        return cls(state_dir=str(doc["state_dir"]), mode=str(doc["mode"]), started_at=str(doc["started_at"]),
                   processes=[ProcessRecord(**p) for p in doc["processes"]], supervisor=doc.get("supervisor"))

    def supervisor_state(self) -> str | None:
        s = self.supervisor
        return None if s is None else process_state(int(s["pid"]), int(s["start_time"]), s["cmdline"])


def resolve_state_dir(state_dir: str | os.PathLike[str] | None = None) -> Path:
    """--state-dir, else $TOKENDROP_SANDBOX_DIR, else ./.tokendrop."""
    chosen = state_dir or os.environ.get(STATE_DIR_ENV) or DEFAULT_STATE_DIR
    return Path(chosen).expanduser().absolute()


def state_path(state_dir: Path) -> Path:
    return state_dir / STATE_FILE


def load_state(state_dir: Path) -> SandboxState | None:
    path = state_path(state_dir)
    try:
        doc = json.loads(path.read_text())
        return SandboxState.from_json(doc)
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError) as exc:
        raise SandboxError(f"the sandbox state file {path} is unreadable ({exc})",
                           "stop any servers it started by hand, then delete the file") from None


def write_state(state: SandboxState) -> Path:
    """Atomically, mode 0600 from the start: the file holds the sandbox's API and root tokens."""
    path = state_path(Path(state.state_dir))
    fd, tmp = tempfile.mkstemp(prefix=".sandbox-", suffix=".json", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(state.to_json(), fh, indent=2)
            fh.write("\n")
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


def remove_state(state_dir: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        state_path(state_dir).unlink()


@contextlib.contextmanager
def locked(state_dir: Path) -> Iterator[None]:
    """Serialise `up` and `down` on one state dir (two `up`s must not both start servers)."""
    prepare_dir(state_dir)
    with open(state_dir / ".lock", "a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SandboxError(f"another `tokendrop sandbox` command is working on {state_dir}",
                               "wait for it to finish") from None
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def prepare_dir(state_dir: Path) -> None:
    state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)


def http_ok(url: str, timeout: float = 2.0, cafile: str | None = None) -> bool:
    if not url.startswith((f"http://{LOOPBACK}:", f"https://{LOOPBACK}:")):
        return False  # never probe anything but the loopback servers we started
    context = ssl.create_default_context(cafile=cafile) if url.startswith("https:") else None
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=context) as response:  # noqa: S310 - loopback
            return 200 <= response.status < 300
    except (OSError, urllib.error.URLError, ValueError):
        return False


def export_lines(env: Mapping[str, str]) -> list[str]:
    return [f"export {k}={shlex.quote(v)}" for k, v in env.items()]


def utc_now() -> str:
    return format_rfc3339(datetime.now(UTC))


# --- starting --------------------------------------------------------------------------------------


class StartFailed(SandboxError):
    """One server did not come up; the others were stopped. `name` and `log` say which and where."""

    def __init__(self, name: str, reason: str, log: str | None) -> None:
        super().__init__(f"{name} failed to start", reason)
        self.name = name
        self.reason = reason
        self.log = log
        self.started_before: list[str] = []  # servers that were up, and were stopped again


@dataclass
class _Started:
    record: ProcessRecord
    stop: Callable[[], None]  # stops it through the handle that started it (reaps our child)
    poll: Callable[[], int | None]  # exit code once it exited
    detach: Callable[[], None]  # forget the handle: the server must outlive this process


class Sandbox:
    """The servers of one sandbox, started by this process (`start()`), or nothing yet."""

    def __init__(self, state_dir: Path, emulators: Sequence[EmulatorSpec] | None = None,
                 timeout: float = START_TIMEOUT) -> None:
        self.state_dir = state_dir
        self.log_dir = state_dir / "logs"
        self.run_dir = state_dir / "run"
        self.emulators = list(EMULATORS if emulators is None else emulators)
        self.timeout = timeout
        self.started: list[_Started] = []

    @property
    def records(self) -> list[ProcessRecord]:
        return [s.record for s in self.started]

    def start(self, progress: Callable[[str], None] = lambda name: None) -> None:
        """Stores first, then emulators. If one fails, stop those already started and raise StartFailed."""
        prepare_dir(self.state_dir)
        for directory in (self.log_dir, self.run_dir):
            directory.mkdir(mode=0o700, exist_ok=True)
        for old in [*self.log_dir.glob("*.log"), *self.run_dir.glob("*.json")]:
            old.unlink()  # a fresh sandbox gets fresh logs (the last run's stay until then for post-mortems)
        starters: list[tuple[str, Callable[[], _Started]]] = [
            ("moto", self._start_moto), ("openbao", self._start_openbao),
            *((spec.name, lambda spec=spec: self._start_emulator(spec)) for spec in self.emulators)]
        try:
            for name, starter in starters:
                progress(name)
                try:
                    self.started.append(starter())
                except ServerStartError as exc:
                    raise StartFailed(name, _reason(name, str(exc)), _log_in(str(exc), self.log_dir)) from None
                except (OSError, ImportError) as exc:
                    raise StartFailed(name, str(exc), None) from None
        except StartFailed as exc:
            exc.started_before = [s.record.name for s in self.started]
            self.stop()
            raise
        except BaseException:  # includes Ctrl-C / SIGTERM during start-up
            self.stop()
            raise

    def _start_moto(self) -> _Started:
        handle = start_moto(self.log_dir, faults=True, timeout=self.timeout)
        return self._from_handle(handle, "store", "AWS SSM Parameter Store (moto)", f"{handle.url}/moto-api/",
                                 {**handle.env(), **AWS_ENV})

    def _start_openbao(self) -> _Started:
        from .approle import SAMPLE_MOUNT, SAMPLE_ROLE, setup_sample_approle

        handle = start_openbao(self.log_dir, timeout=self.timeout)
        try:  # an AppRole mount and a sample role `ci`, for tokendrop_vault_approle_secret_id
            setup_sample_approle(handle)
        except Exception:
            handle.stop()
            raise
        return self._from_handle(handle, "store", f"Vault API (OpenBao dev server, KV v2 at secret/, AppRole "
                                 f"role {SAMPLE_ROLE} at auth/{SAMPLE_MOUNT})", f"{handle.url}/v1/sys/health",
                                 handle.env())

    def _from_handle(self, handle: ServerHandle, kind: str, title: str, health_url: str,
                     env: dict[str, str]) -> _Started:
        found = identity(handle.pid)
        if found is None:
            handle.stop()
            raise StartFailed(handle.name, "exited right after it became ready", str(handle.log_path))
        record = ProcessRecord(handle.name, kind, title, handle.pid, handle.url, health_url,
                               str(handle.log_path), found.start_time, list(found.cmdline), env)

        def detach() -> None:
            atexit.unregister(handle.stop)  # the launchers' safety net would kill a detached sandbox

        def poll() -> int | None:
            return None if handle.running else handle._process.returncode  # same package: the exit code

        return _Started(record, handle.stop, poll, detach)

    def _start_emulator(self, spec: EmulatorSpec) -> _Started:
        log_path = self.log_dir / f"{spec.name}.log"
        ready = self.run_dir / f"{spec.name}.json"
        argv = [sys.executable, "-m", spec.module, "--port", "0", "--ready-file", str(ready),
                "--log-level", "INFO", *spec.args]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        with open(log_path, "ab") as log:
            process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                       start_new_session=True, env=env, cwd=self.state_dir)

        def stop() -> None:
            _stop_child(process)

        try:
            info = _await_ready(process, ready, self.timeout)
            url = str(info.get("url", ""))
            raw_env = info.get("env")
            exported: dict[str, Any] = raw_env if isinstance(raw_env, dict) else {}
            missing = [k for k in spec.exports if k not in exported]
            if not url.startswith((f"http://{LOOPBACK}:", f"https://{LOOPBACK}:")) or missing \
                    or info.get("pid") != process.pid:
                raise StartFailed(spec.name, f"its ready file {ready} is not what the sandbox expects "
                                  f"(url {url!r}, pid {info.get('pid')}, missing env {missing})", str(log_path))
            found = identity(process.pid)
            if found is None:
                raise StartFailed(spec.name, "exited right after it became ready", str(log_path))
        except StartFailed as exc:
            stop()
            exc.log = str(log_path)
            raise
        except BaseException:
            stop()
            raise
        record = ProcessRecord(spec.name, "emulator", spec.title, process.pid, url, f"{url}/_sandbox/health",
                               str(log_path), found.start_time, list(found.cmdline),
                               {k: str(v) for k, v in exported.items()})
        return _Started(record, stop, process.poll, lambda: None)

    def exited(self) -> list[tuple[ProcessRecord, int]]:
        """Servers that exited on their own, with their exit codes."""
        return [(s.record, code) for s in self.started if (code := s.poll()) is not None]

    def stop(self) -> None:
        """Stop every server this object started, last first (each by its own handle, so by its pid)."""
        while self.started:
            item = self.started.pop()
            with contextlib.suppress(Exception):
                item.stop()

    def detach(self) -> None:
        """Let the servers outlive this process (`up --detach`)."""
        for item in self.started:
            item.detach()
        self.started = []


def _reason(name: str, message: str) -> str:
    """servers.py's first line without the server's name and the log path (shown separately)."""
    first = message.split("\n", 1)[0]
    first = re.sub(r";? log \S+:$", "", first).strip()
    return first.removeprefix(f"{name} ")


def _log_in(message: str, log_dir: Path) -> str | None:
    # servers.py names the log in its error message ("...; log <path>:"); find it to show its tail.
    for word in message.replace(":", " ").split():
        if word.startswith(str(log_dir)) and word.endswith(".log"):
            return word
    return None


def _await_ready(process: subprocess.Popen[bytes], ready: Path, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready.exists():
            try:
                doc = json.loads(ready.read_text())
            except ValueError:
                doc = None
            if isinstance(doc, dict):
                return doc
        if process.poll() is not None:
            raise StartFailed(ready.stem, f"exited with code {process.returncode} before it was ready", None)
        time.sleep(0.05)
    raise StartFailed(ready.stem, f"not ready after {timeout:.0f}s", None)


def _stop_child(process: subprocess.Popen[bytes], timeout: float = STOP_TIMEOUT) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def self_identity() -> dict[str, Any]:
    found = identity(os.getpid())
    if found is None:  # cannot happen for a running process; keeps the type checker honest
        raise SandboxError("cannot read this process's own /proc entry")
    return {"pid": os.getpid(), "start_time": found.start_time, "cmdline": list(found.cmdline)}


# --- stopping a recorded sandbox -------------------------------------------------------------------


@dataclass
class StopReport:
    results: list[tuple[str, int, str]]  # (name, pid, outcome)

    @property
    def reused(self) -> list[tuple[str, int, str]]:
        return [r for r in self.results if r[2] == REUSED]


def stop_recorded(state: SandboxState, timeout: float = STOP_TIMEOUT) -> StopReport:
    """Stop a sandbox from its state file: the foreground supervisor first (it stops its own servers
    and removes the file), then every server still running, last started first."""
    results: list[tuple[str, int, str]] = []
    sup = state.supervisor
    if sup is not None:
        outcome = stop_pid(int(sup["pid"]), int(sup["start_time"]), sup["cmdline"], timeout + 5)
        results.append(("supervisor", int(sup["pid"]), outcome))
    for record in reversed(state.processes):
        results.append((record.name, record.pid, record.stop(timeout)))
    return StopReport(results)


def describe_state(state: SandboxState) -> list[tuple[ProcessRecord, str, bool]]:
    """(record, process state, healthy) for every recorded server."""
    out = []
    for record in state.processes:
        st = record.state()
        out.append((record, st, st == RUNNING and record.healthy()))
    return out


def is_live(state: SandboxState) -> bool:
    """Does anything recorded still run (so a new `up` must not start over it)?"""
    return state.supervisor_state() == RUNNING or any(p.state() == RUNNING for p in state.processes)


@contextlib.contextmanager
def interruptible() -> Iterator[None]:
    """Turn SIGTERM (and SIGHUP) into KeyboardInterrupt while servers start, so cleanup runs."""
    previous = {}
    for signum in (signal.SIGTERM, signal.SIGHUP):
        previous[signum] = signal.signal(signum, signal.default_int_handler)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
