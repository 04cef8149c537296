"""`tokendrop sandbox up/env/status/down` with real processes in a temporary state dir.

Proves: a detached sandbox starts moto, OpenBao and the TFE emulator on 127.0.0.1 only, records them in
a 0600 state file, prints an environment that real clients (boto3, hvac, the TFE API) work with, and
`down` stops every pid and removes the file; `down` is idempotent, never kills a reused pid and
escalates to SIGKILL; stale state files are detected; a server that fails to start takes the others
down with it and its log tail is shown; the foreground mode stops everything on Ctrl-C, SIGTERM,
`down` from elsewhere, or when one of its servers dies.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import boto3
import hvac
import pytest
import requests

from tokendrop_provider.cli import main as tokendrop_main
from tokendrop_provider.sandbox import runner
from tokendrop_provider.sandbox.runner import EmulatorSpec, ProcessRecord, SandboxState

REQUIRED_ENV = {"TFE_ADDRESS", "TFE_TOKEN", "AWS_ENDPOINT_URL_SSM", "AWS_REGION", "AWS_ACCESS_KEY_ID",
                "AWS_SECRET_ACCESS_KEY", "VAULT_ADDR", "VAULT_TOKEN"}
# Stores first, then every registered emulator, in start order.
SERVERS = ["moto", "openbao", *(spec.name for spec in runner.EMULATORS)]
EXPORTED = REQUIRED_ENV.union(*(spec.exports for spec in runner.EMULATORS))


def cli(*args: str, state_dir: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """`tokendrop sandbox <args> --state-dir <dir>` in a fresh process, as a user runs it."""
    env = {k: v for k, v in os.environ.items() if k != runner.STATE_DIR_ENV}
    return subprocess.run([sys.executable, "-m", "tokendrop_provider.cli", "sandbox", *args,
                           "--state-dir", str(state_dir)], capture_output=True, text=True, env=env,
                          timeout=timeout, check=False)


def read_state(state_dir: Path) -> dict:
    return json.loads((state_dir / "sandbox.json").read_text())


def alive(pid: int) -> bool:
    return runner.identity(pid) is not None


def wait_gone(pids: list[int], timeout: float = 15) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        left = [p for p in pids if alive(p)]
        if not left:
            return []
        time.sleep(0.05)
    return [p for p in pids if alive(p)]


def _decode(address: str) -> tuple[str, int]:
    host, port = address.split(":")
    raw = bytes.fromhex(host)
    # /proc/net/tcp{,6} print the address as 32-bit words in host (little-endian) order.
    swapped = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
    family = socket.AF_INET if len(raw) == 4 else socket.AF_INET6
    return socket.inet_ntop(family, swapped), int(port, 16)


def listening(pid: int) -> set[tuple[str, int]]:
    """(address, port) of every TCP socket the process listens on."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            m = re.fullmatch(r"socket:\[(\d+)\]", os.readlink(fd))
        except OSError:
            continue
        if m:
            inodes.add(m.group(1))
    found = set()
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/net/{table}").read_text().splitlines()[1:]:
            parts = line.split()
            if parts[3] == "0A" and parts[9] in inodes:  # 0A = LISTEN
                found.add(_decode(parts[1]))
    return found


def live_children() -> set[int]:
    """Pids of this process's children that have not exited."""
    me = os.getpid()
    out = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            text = (entry / "stat").read_text()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2:].split()
        if int(fields[1]) == me and fields[0] not in ("Z", "X"):
            out.add(int(entry.name))
    return out


def spawn(code: str) -> subprocess.Popen[bytes]:
    """A helper process to stand in for a recorded server (its own session, like the real ones)."""
    return subprocess.Popen([sys.executable, "-c", code], start_new_session=True)


def record_for(proc: subprocess.Popen[bytes], name: str, *, start_time: int | None = None,
               cmdline: list[str] | None = None) -> ProcessRecord:
    ident = None
    for _ in range(100):  # the interpreter needs a moment before /proc shows its final cmdline
        ident = runner.identity(proc.pid)
        if ident is not None and "-c" in ident.cmdline:
            break
        time.sleep(0.02)
    assert ident is not None
    return ProcessRecord(name, "emulator", name, proc.pid, "http://127.0.0.1:9", "http://127.0.0.1:9/_sandbox/health",
                         "/nonexistent.log", ident.start_time if start_time is None else start_time,
                         list(ident.cmdline) if cmdline is None else cmdline, {"X": "1"})


def write_fake_state(state_dir: Path, records: list[ProcessRecord]) -> None:
    state_dir.mkdir(parents=True, exist_ok=True)
    runner.write_state(SandboxState(str(state_dir), "detached", runner.utc_now(), records))


@pytest.fixture
def state_dir(tmp_path: Path):
    directory = tmp_path / "sandbox"
    yield directory
    # Whatever a failing test left behind goes down by pid.
    if (directory / "sandbox.json").exists():
        cli("down", "--timeout", "2", state_dir=directory)


def test_detached_round_trip(state_dir: Path, tmp_path: Path):
    # A stale state file from a sandbox that died (its pid has exited) must not block `up`.
    dead = spawn("pass")
    dead.wait()
    write_fake_state(state_dir, [ProcessRecord("tfe", "emulator", "old", dead.pid, "http://127.0.0.1:9",
                                               "http://127.0.0.1:9/", "/x.log", 1, ["python"], {})])

    up = cli("up", "--detach", state_dir=state_dir)
    assert up.returncode == 0, up.stderr
    assert "Removed a stale state file" in up.stderr
    for name in SERVERS:
        assert re.search(rf"^  {name} +https?://127\.0\.0\.1:\d+ +pid \d+", up.stdout, re.M), up.stdout
    assert "export TFE_ADDRESS=http://127.0.0.1:" in up.stdout
    assert "tokendrop sandbox down" in up.stdout

    path = state_dir / "sandbox.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    state = read_state(state_dir)
    assert state["version"] == 1 and state["mode"] == "detached" and state["supervisor"] is None
    assert set(state["env"]) >= EXPORTED
    processes = {p["name"]: p for p in state["processes"]}
    assert [p["name"] for p in state["processes"]] == SERVERS
    pids = [p["pid"] for p in processes.values()]
    for p in processes.values():
        assert alive(p["pid"]), p
        assert Path(p["log"]).is_file() and Path(p["log"]).parent == state_dir / "logs"
        port = int(p["url"].rsplit(":", 1)[1])
        sockets = listening(p["pid"])
        assert ("127.0.0.1", port) in sockets, (p["name"], sockets)
        assert {host for host, _ in sockets} == {"127.0.0.1"}, f"{p['name']} listens beyond loopback: {sockets}"
    # The up command has exited: the servers are no one's children but init's (or a subreaper's).
    assert not set(pids) & live_children()

    env = cli("env", state_dir=state_dir)
    assert env.returncode == 0, env.stderr
    exported = dict(shlex.split(line.removeprefix("export "))[0].split("=", 1) for line in env.stdout.splitlines())
    assert exported == state["env"]
    assert exported[runner.STATE_DIR_ENV] == str(state_dir)

    again = cli("up", "--detach", state_dir=state_dir)
    assert again.returncode == 1 and "already running" in again.stderr
    assert read_state(state_dir)["processes"] == state["processes"]  # untouched

    status = cli("status", state_dir=state_dir)
    assert status.returncode == 0, status.stdout
    assert len(re.findall(r"pid \d+ +healthy$", status.stdout, re.M)) == len(SERVERS), status.stdout
    assert f"All {len(SERVERS)} servers healthy" in status.stdout

    # One server dies behind the sandbox's back: status says so, down copes.
    os.kill(processes["tfe"]["pid"], signal.SIGKILL)
    assert not wait_gone([processes["tfe"]["pid"]])
    status = cli("status", state_dir=state_dir)
    assert status.returncode == 1
    assert re.search(r"tfe .* not running \(exited\)", status.stdout), status.stdout

    down = cli("down", state_dir=state_dir)
    assert down.returncode == 0, down.stderr
    assert "tfe (pid" in down.stdout and "already gone" in down.stdout
    assert down.stdout.count(": stopped") == len(SERVERS) - 1
    assert not wait_gone(pids, timeout=1), "down returned before every server was gone"
    assert not path.exists()

    down_again = cli("down", state_dir=state_dir)
    assert down_again.returncode == 0 and "nothing to stop" in down_again.stdout
    assert cli("status", state_dir=state_dir).returncode == 3
    missing = cli("env", state_dir=state_dir)
    assert missing.returncode == 3 and "No sandbox is running" in missing.stderr and not missing.stdout


def test_env_for_eval_points_real_clients_at_the_sandbox(state_dir: Path):
    script = (f'eval "$({shlex.quote(sys.executable)} -m tokendrop_provider.cli sandbox up --detach --env '
              f'--state-dir {shlex.quote(str(state_dir))})" && env')
    shell = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=120, check=False)
    assert shell.returncode == 0, shell.stderr
    env = dict(line.split("=", 1) for line in shell.stdout.splitlines() if "=" in line)
    assert set(env) >= REQUIRED_ENV

    # boto3 with only the environment (no endpoint_url argument): AWS_ENDPOINT_URL_SSM and the region.
    saved = {k: os.environ.get(k) for k in (*REQUIRED_ENV, "AWS_DEFAULT_REGION")}
    os.environ.update({k: env[k] for k in saved if k in env})
    try:
        ssm = boto3.session.Session().client("ssm")
        ssm.put_parameter(Name="/sandbox/probe", Value="v1", Type="SecureString")
        assert ssm.get_parameter(Name="/sandbox/probe", WithDecryption=True)["Parameter"]["Value"] == "v1"
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v

    vault = hvac.Client(url=env["VAULT_ADDR"], token=env["VAULT_TOKEN"])
    vault.secrets.kv.v2.create_or_update_secret(path="probe", secret={"k": "v"}, mount_point="secret")
    assert vault.secrets.kv.v2.read_secret_version(path="probe", mount_point="secret",
                                                   raise_on_deleted_version=True)["data"]["data"] == {"k": "v"}

    pools = requests.get(f"{env['TFE_ADDRESS']}/api/v2/organizations/acme/agent-pools",
                         headers={"Authorization": f"Bearer {env['TFE_TOKEN']}"}, timeout=10)
    assert pools.status_code == 200, pools.text

    assert cli("down", state_dir=state_dir).returncode == 0


@pytest.mark.parametrize(("spec", "expected"), [
    (EmulatorSpec("broken", "tokendrop_provider.sandbox.no_such_emulator", "broken", ("X",)),
     "No module named tokendrop_provider.sandbox.no_such_emulator"),
    (EmulatorSpec("liar", "tokendrop_provider.sandbox.tfe", "exports too little", ("BUILDKITE_API_TOKEN",)),
     "missing env ['BUILDKITE_API_TOKEN']"),
], ids=["crashes", "wrong-ready-file"])
def test_a_failing_server_takes_the_others_down(state_dir: Path, monkeypatch, capsys, spec, expected):
    monkeypatch.setattr(runner, "EMULATORS", [*runner.EMULATORS, spec])
    before = live_children()

    code = tokendrop_main(["sandbox", "up", "--detach", "--state-dir", str(state_dir)])

    err = capsys.readouterr().err
    assert code == 1
    assert f"{spec.name} failed to start" in err
    assert f"Stopped the servers already started: {', '.join(SERVERS)}." in err
    if spec.name == "broken":
        assert f"Last lines of {state_dir / 'logs' / 'broken.log'}:" in err
    assert expected in err
    assert not (state_dir / "sandbox.json").exists()
    assert live_children() <= before, "servers started before the failure are still running"


def test_stale_and_reused_pids_are_reported_and_never_killed(state_dir: Path):
    dead = spawn("pass")
    dead.wait()
    bystander = spawn("import time; time.sleep(60)")  # its pid "was reused" by an unrelated process
    try:
        reused = record_for(bystander, "tfe", start_time=1)
        gone = ProcessRecord("moto", "store", "moto", dead.pid, "http://127.0.0.1:9", "http://127.0.0.1:9/",
                             "/x.log", 1, ["python"], {})
        write_fake_state(state_dir, [gone, reused])

        status = cli("status", state_dir=state_dir)
        assert status.returncode == 3
        assert re.search(r"moto .* not running \(exited\)", status.stdout)
        assert re.search(r"tfe .*\(its pid now belongs to another process\)", status.stdout), status.stdout
        env = cli("env", state_dir=state_dir)
        assert env.returncode == 3 and "stale state file" in env.stderr

        down = cli("down", state_dir=state_dir)
        assert down.returncode == 0, down.stderr
        assert f"tfe (pid {bystander.pid}): left alone" in down.stdout
        assert f"moto (pid {dead.pid}): already gone" in down.stdout
        assert bystander.poll() is None, "down killed a process it did not start"
        assert not (state_dir / "sandbox.json").exists()
    finally:
        bystander.kill()
        bystander.wait()


def test_down_escalates_to_sigkill(state_dir: Path):
    stubborn = spawn("import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\ntime.sleep(60)")
    try:
        write_fake_state(state_dir, [record_for(stubborn, "stubborn")])
        started = time.monotonic()
        down = cli("down", "--timeout", "0.5", state_dir=state_dir)
        assert down.returncode == 0, down.stderr
        assert "stubborn (pid" in down.stdout and "killed" in down.stdout
        assert stubborn.wait(timeout=5) == -signal.SIGKILL
        assert time.monotonic() - started < 30
    finally:
        if stubborn.poll() is None:
            stubborn.kill()
            stubborn.wait()


@pytest.mark.parametrize("how", ["ctrl-c", "sigterm", "down", "server-dies"])
def test_foreground_sandbox_stops_everything(state_dir: Path, how: str):
    env = {k: v for k, v in os.environ.items() if k != runner.STATE_DIR_ENV}
    proc = subprocess.Popen([sys.executable, "-m", "tokendrop_provider.cli", "sandbox", "up",
                             "--state-dir", str(state_dir)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)
    try:
        deadline = time.monotonic() + 60
        while not (state_dir / "sandbox.json").exists():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "foreground sandbox never wrote its state file"
            time.sleep(0.05)
        state = read_state(state_dir)
        assert state["mode"] == "foreground" and state["supervisor"]["pid"] == proc.pid
        pids = [p["pid"] for p in state["processes"]]
        status = cli("status", state_dir=state_dir)
        assert status.returncode == 0 and "supervisor" in status.stdout, status.stdout

        if how == "down":
            down = cli("down", state_dir=state_dir)
            assert down.returncode == 0 and f"supervisor (pid {proc.pid}): stopped" in down.stdout, down.stdout
        elif how == "server-dies":
            tfe = next(p for p in state["processes"] if p["name"] == "tfe")
            os.kill(tfe["pid"], signal.SIGKILL)
        else:
            proc.send_signal(signal.SIGINT if how == "ctrl-c" else signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
        if how == "server-dies":
            assert proc.returncode == 1
            assert "tfe exited unexpectedly (exit code -9); last lines of" in err, err
        else:
            assert proc.returncode == 0, err
        assert "Press Ctrl-C to stop" in out and "Sandbox stopped." in out
        assert not wait_gone(pids, timeout=1)
        assert not (state_dir / "sandbox.json").exists()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_env_flag_needs_detach(state_dir: Path):
    result = cli("up", "--env", state_dir=state_dir)
    assert result.returncode == 1
    assert "--env needs --detach" in result.stderr
    assert not (state_dir / "sandbox.json").exists()


def test_a_store_that_never_gets_ready_is_reported_with_its_log(state_dir: Path):
    result = cli("up", "--detach", "--timeout", "0.01", state_dir=state_dir)
    assert result.returncode == 1
    assert re.search(r"^tokendrop sandbox: moto failed to start: did not become ready on http://127\.0\.0\.1:\d+",
                     result.stderr, re.M), result.stderr
    assert re.search(rf"^Last lines of {re.escape(str(state_dir))}/logs/moto-\d+\.log:$", result.stderr, re.M)
    assert not (state_dir / "sandbox.json").exists()
