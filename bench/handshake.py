"""Provider launches as Terraform makes them, timed from exec: to the handshake line, and to exit for the
two launches that only answer questions (a schema launch: GetProviderSchema, then Shutdown; a validate
launch: ten ValidateResourceConfig calls, then Shutdown).

Usage: python bench/handshake.py [runs] [-- provider command ...]
       (prints median, min and max in milliseconds; the command defaults to the launcher that
        `tokendrop provider install` writes for this environment)
"""

from __future__ import annotations

import base64
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc

from tokendrop_provider import schema
from tokendrop_provider.install import install
from tokendrop_provider.plugin import codec
from tokendrop_provider.plugin.gen import go_plugin_pb2, go_plugin_pb2_grpc, tfplugin6_pb2, tfplugin6_pb2_grpc
from tokendrop_provider.plugin.server import MAGIC_COOKIE_KEY, MAGIC_COOKIE_VALUE

_LAUNCHER: Path | None = None


def provider_command() -> list[str]:
    """The launcher `tokendrop provider install` writes: what Terraform runs (it also compiles bytecode)."""
    global _LAUNCHER
    if _LAUNCHER is None:
        _LAUNCHER = install(Path(tempfile.mkdtemp(prefix="bench-handshake-")) / "mirror").path
    return [str(_LAUNCHER)]


def _launch(command: Sequence[str]) -> subprocess.Popen[bytes]:
    env = {**os.environ, MAGIC_COOKIE_KEY: MAGIC_COOKIE_VALUE, "PLUGIN_PROTOCOL_VERSIONS": "5,6"}
    env.pop("TF_LOG", None)
    return subprocess.Popen(list(command), env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)


def _handshake(proc: subprocess.Popen[bytes]) -> tuple[str, bytes]:
    """(socket path, PEM certificate) from the handshake line."""
    assert proc.stdout is not None
    line = proc.stdout.readline().decode().strip()
    if not line.startswith("1|6|unix|"):
        raise RuntimeError(f"unexpected handshake line: {line[:80]!r}")
    _, _, _, address, _, cert = line.split("|")
    der = base64.b64decode(cert + "=" * (-len(cert) % 4))
    pem = b"-----BEGIN CERTIFICATE-----\n" + base64.encodebytes(der) + b"-----END CERTIFICATE-----\n"
    return address, pem


def _reap(proc: subprocess.Popen[bytes], timeout: float = 30.0) -> float:
    """Wait for the process (killing it after `timeout` seconds, as go-plugin does after two); its user +
    system CPU seconds (a number that load on a shared machine inflates less than wall time)."""
    deadline = time.monotonic() + timeout
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return usage.ru_utime + usage.ru_stime
        if time.monotonic() > deadline:
            proc.kill()
            deadline = float("inf")
        time.sleep(0.001)


def time_handshake(command: Sequence[str] | None = None) -> float:
    started = time.perf_counter()
    proc = _launch(command or provider_command())
    try:
        _handshake(proc)
        return time.perf_counter() - started
    finally:
        proc.terminate()
        _reap(proc)


def _ask_schema(provider: tfplugin6_pb2_grpc.ProviderStub) -> None:
    provider.GetProviderSchema(tfplugin6_pb2.GetProviderSchema.Request(), timeout=30)


def token_validate_request() -> tfplugin6_pb2.ValidateResourceConfig.Request:
    """What Terraform sends to validate one tokendrop_tfe_agent_token with an SSM sink."""
    token = schema.TFE_AGENT_TOKEN
    config = {a.name: None for a in token.attributes}
    config.update(agent_pool_id="apool-1234567890abcdef", deliver_to={
        "ssm": {"name": "/ci/token", "kms_key_id": None, "tier": None, "description": None, "tags": None},
        "vault_kv": None})
    return tfplugin6_pb2.ValidateResourceConfig.Request(
        type_name=token.type_name, config=tfplugin6_pb2.DynamicValue(msgpack=codec.encode(config, token.cty_type)))


def _validate_ten(request: tfplugin6_pb2.ValidateResourceConfig.Request):  # type: ignore[no-untyped-def]
    def calls(provider: tfplugin6_pb2_grpc.ProviderStub) -> None:
        for _ in range(10):
            response = provider.ValidateResourceConfig(request, timeout=30)
            if response.diagnostics:
                raise RuntimeError(f"validation failed: {response.diagnostics}")

    return calls


def time_launch(calls: Callable[[tfplugin6_pb2_grpc.ProviderStub], None],
                command: Sequence[str] | None = None) -> tuple[float, float]:
    """(wall seconds from exec to exit, CPU seconds) of one launch that makes `calls`, then shuts the
    provider down."""
    started = time.perf_counter()
    proc = _launch(command or provider_command())
    try:
        address, pem = _handshake(proc)
        credentials = grpc.ssl_channel_credentials(root_certificates=pem)
        with grpc.secure_channel(f"unix:{address}", credentials,
                                 options=[("grpc.ssl_target_name_override", "localhost")]) as channel:
            calls(tfplugin6_pb2_grpc.ProviderStub(channel))
            # As go-plugin: an unanswered Shutdown is tolerated; the exit is waited for (two seconds).
            with contextlib.suppress(grpc.RpcError):
                go_plugin_pb2_grpc.GRPCControllerStub(channel).Shutdown(go_plugin_pb2.Empty(), timeout=30)
        cpu = _reap(proc, timeout=2.0)
        return time.perf_counter() - started, cpu
    finally:
        if proc.returncode is None:
            proc.kill()
            proc.wait()


def rpc_cpu(command: Sequence[str] | None = None,
            validate: tfplugin6_pb2.ValidateResourceConfig.Request | None = None, calls: int = 1000,
            parallel: int = 10) -> float:
    """Provider CPU seconds per ValidateResourceConfig: a launch answering `calls + 1` of them, `parallel`
    at a time (Terraform's default parallelism), less a launch answering one. The handler's own work is
    a small part of it (see `handler_cpu`); the rest is grpc's per-call machinery."""
    request = validate or token_validate_request()

    def one(provider: tfplugin6_pb2_grpc.ProviderStub) -> None:
        response = provider.ValidateResourceConfig(request, timeout=30)
        if response.diagnostics:
            raise RuntimeError(f"validation failed: {response.diagnostics}")

    def many(provider: tfplugin6_pb2_grpc.ProviderStub) -> None:
        one(provider)
        with ThreadPoolExecutor(parallel) as pool:
            list(pool.map(lambda _: provider.ValidateResourceConfig(request, timeout=30), range(calls)))

    _, base = time_launch(one, command)
    _, loaded = time_launch(many, command)
    return max(0.0, loaded - base) / calls


def handler_cpu(calls: int = 2000) -> float:
    """CPU seconds of tokendrop's ValidateResourceConfig handler alone, in this process, per call
    (protobuf parse and serialization included): what the provider does per call besides grpc."""
    from tokendrop_provider.plugin.service import ProviderService
    from tokendrop_provider.provider import ProviderCore

    service = ProviderService(ProviderCore())
    wire = token_validate_request().SerializeToString()
    request_type = tfplugin6_pb2.ValidateResourceConfig.Request
    answer = service.ValidateResourceConfig(request_type.FromString(wire), None)
    if answer.diagnostics:
        raise RuntimeError(f"validation failed: {answer.diagnostics}")
    started = time.process_time()
    for _ in range(calls):
        service.ValidateResourceConfig(request_type.FromString(wire), None).SerializeToString()
    return (time.process_time() - started) / calls


def measure_launches(runs: int = 20, command: Sequence[str] | None = None,
                     validate: tfplugin6_pb2.ValidateResourceConfig.Request | None = None) -> dict[str, list[float]]:
    """Start-up to handshake, and exec to exit (wall and CPU) of a schema launch and of a validate launch,
    interleaved so that load changes hit all alike."""
    time_launch(_ask_schema, command)  # warm the page cache
    samples: dict[str, list[float]] = {"handshake": [], "schema launch": [], "schema launch CPU": [],
                                       "validate launch": [], "validate launch CPU": []}
    for _ in range(runs):
        samples["handshake"].append(time_handshake(command))
        validate_ten = _validate_ten(validate or token_validate_request())
        for name, calls in (("schema launch", _ask_schema), ("validate launch", validate_ten)):
            wall, cpu = time_launch(calls, command)
            samples[name].append(wall)
            samples[name + " CPU"].append(cpu)
    return samples


def main() -> int:
    args = sys.argv[1:]
    command = None
    if "--" in args:
        command, args = args[args.index("--") + 1:], args[:args.index("--")]
    runs = int(args[0]) if args else 20
    validate = None
    if command and command[-1].endswith("peer_provider.py"):
        from peer import validate_request

        validate = validate_request()
    for name, seconds in measure_launches(runs, command, validate).items():
        samples = [s * 1000 for s in seconds]
        print(f"{name:>20} over {runs} launches: median {statistics.median(samples):.0f} ms, "
              f"min {min(samples):.0f} ms, max {max(samples):.0f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
