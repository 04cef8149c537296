"""What a launch of the provider costs Terraform: which RPCs it can skip and what the process loads.
Measured by `make bench`; these tests check the mechanisms, never a duration."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import grpc

from tokendrop_provider import schema
from tokendrop_provider.install import store_schema_answer
from tokendrop_provider.plugin import codec, schema_cache
from tokendrop_provider.plugin.gen import (
    go_plugin_pb2,
    go_plugin_pb2_grpc,
    health_pb2,
    health_pb2_grpc,
    tfplugin6_pb2_grpc,
)
from tokendrop_provider.plugin.gen import tfplugin6_pb2 as pb
from tokendrop_provider.plugin.server import MAGIC_COOKIE_KEY, MAGIC_COOKIE_VALUE
from tokendrop_provider.plugin.service import ProviderService
from tokendrop_provider.provider import ProviderCore


def test_schema_and_metadata_let_terraform_reuse_the_schema_it_cached():
    """With get_provider_schema_optional, Terraform answers the validate, plan and apply launches from
    the schema the first launch returned, instead of fetching it again in each new process."""
    service = ProviderService(ProviderCore())
    schema = service.GetProviderSchema(pb.GetProviderSchema.Request(), None)
    metadata = service.GetMetadata(pb.GetMetadata.Request(), None)
    for capabilities in (schema.server_capabilities, metadata.server_capabilities):
        assert capabilities.get_provider_schema_optional
        assert capabilities.plan_destroy
    assert {r.type_name for r in metadata.resources} == set(schema.resource_schemas)


# Runs the provider and, as it exits, writes the names of every module it holds loaded. A second
# argument is the stored schema answer to use instead of the one install keeps in the package.
PROBE = """
import json, os, sys
from tokendrop_provider.main import main
from tokendrop_provider.plugin import schema_cache

if len(sys.argv) > 2:
    schema_cache.CACHE_PATH = sys.argv[2]

exit_now = os._exit

def record_and_exit(code):
    with open(sys.argv[1], "w") as out:
        json.dump(sorted(name for name, module in sys.modules.items() if module is not None), out)
    exit_now(code)

os._exit = record_and_exit
main()
"""


def _launch(command: list[str], calls, env: dict[str, str] | None = None) -> None:  # type: ignore[no-untyped-def]
    """Launch the provider as Terraform does, make `calls`, shut it down and wait for a clean exit."""
    env = {**os.environ, MAGIC_COOKIE_KEY: MAGIC_COOKIE_VALUE, "PLUGIN_PROTOCOL_VERSIONS": "6", **(env or {})}
    env.pop("TF_LOG", None)
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        _, _, _, address, _, cert = proc.stdout.readline().decode().strip().split("|")
        der = base64.b64decode(cert + "=" * (-len(cert) % 4))
        pem = b"-----BEGIN CERTIFICATE-----\n" + base64.encodebytes(der) + b"-----END CERTIFICATE-----\n"
        with grpc.secure_channel(f"unix:{address}", grpc.ssl_channel_credentials(root_certificates=pem),
                                 options=[("grpc.ssl_target_name_override", "localhost")]) as channel:
            provider = tfplugin6_pb2_grpc.ProviderStub(channel)
            provider.channel = channel  # for calls to the other services
            calls(provider)
            go_plugin_pb2_grpc.GRPCControllerStub(channel).Shutdown(go_plugin_pb2.Empty(), timeout=30)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err[-2000:]


def _launch_imports(calls, tmp_path, schema_answer: str | None = None) -> set[str]:  # type: ignore[no-untyped-def]
    """Every module a provider launch had loaded when it exited after `calls` and a Shutdown."""
    record = tmp_path / "modules.json"
    _launch([sys.executable, "-c", PROBE, str(record), *([schema_answer] if schema_answer else [])], calls)
    return set(json.loads(record.read_text()))


def _validate(provider: tfplugin6_pb2_grpc.ProviderStub) -> None:
    token = schema.TFE_AGENT_TOKEN
    config = {a.name: None for a in token.attributes}
    config.update(agent_pool_id="apool-1234567890abcdef", deliver_to={
        "ssm": {"name": "/ci/token", "kms_key_id": None, "tier": None, "description": None, "tags": None},
        "vault_kv": None})
    response = provider.ValidateResourceConfig(pb.ValidateResourceConfig.Request(
        type_name=token.type_name, config=pb.DynamicValue(msgpack=codec.encode(config, token.cty_type))), timeout=30)
    assert not response.diagnostics, response.diagnostics


HEAVY = ("boto3", "botocore", "requests", "urllib3", "cryptography.x509", "grpc_tools", "grpc_health",
         "grpc_reflection", "tokendrop_provider.issuers.tfe", "tokendrop_provider.sinks.ssm")


def test_schema_and_validate_launches_load_no_client_library(tmp_path):
    """The launches that only answer GetProviderSchema and ValidateResourceConfig never pay for the
    issuer and sink clients (requests, boto3) or grpc's optional extensions."""
    imported = _launch_imports(lambda p: (p.GetProviderSchema(pb.GetProviderSchema.Request(), timeout=30),
                                          _validate(p)), tmp_path)
    assert "tokendrop_provider.plugin.service" in imported and "grpc" in imported  # the log is complete
    assert sorted(m for m in imported if m.split(".")[0] in HEAVY or m in HEAVY) == []


def test_shutdown_is_answered_before_the_process_exits(tmp_path):
    """The provider exits without interpreter teardown as soon as its server stops; Terraform must still
    get the answer to Shutdown (go-plugin logs an error there as a warning and kills the process)."""
    for _ in range(10):
        _launch([sys.executable, "-m", "tokendrop_provider"], lambda provider: None)  # raises if not answered


# What only the provider core, protobuf or grpc's asyncio API bring in.
NOT_FOR_THE_SCHEMA = ("google.protobuf", "msgpack", "asyncio", "ssl", "grpc.aio", "tokendrop_provider.plugin.service",
                      "tokendrop_provider.plugin.gen", "tokendrop_provider.provider", "tokendrop_provider.schema",
                      "tokendrop_provider.resources", "tokendrop_provider.registry",
                      "cryptography.hazmat.primitives.serialization")


def test_a_schema_launch_answers_from_the_stored_schema_and_loads_no_provider_code(tmp_path):
    """With the answer `tokendrop provider install` stores, the launch that only asks for the schema gets
    the same schema as a launch that builds it, and loads none of protobuf, the provider core or asyncio."""
    assert store_schema_answer()  # what install does; the launch reads a copy no other test can touch
    stored = tmp_path / "schema.cache"
    stored.write_bytes(Path(schema_cache.CACHE_PATH).read_bytes())
    answers: list[pb.GetProviderSchema.Response] = []

    def ask(provider: tfplugin6_pb2_grpc.ProviderStub) -> None:
        answers.append(provider.GetProviderSchema(pb.GetProviderSchema.Request(), timeout=30))

    imported = _launch_imports(ask, tmp_path, str(stored))
    assert "tokendrop_provider.plugin.routes" in imported and "grpc" in imported  # the log is complete
    assert sorted(m for m in imported if any(m == n or m.startswith(n + ".") for n in NOT_FOR_THE_SCHEMA)) == []
    built = ProviderService(ProviderCore()).GetProviderSchema(pb.GetProviderSchema.Request(), None)
    assert answers[0] == built
    assert answers[0].server_capabilities.get_provider_schema_optional
    assert set(answers[0].resource_schemas) == set(ProviderCore().resources)


def test_go_plugin_calls_and_unknown_methods_are_answered_without_loading_the_provider(tmp_path):
    """Health, the broker stream and Shutdown get their answers before the provider core is loaded, and
    a method nobody serves is UNIMPLEMENTED before and after it is."""
    results: dict[str, object] = {}

    def calls(provider: tfplugin6_pb2_grpc.ProviderStub) -> None:
        channel = provider.channel  # type: ignore[attr-defined]
        health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service="plugin"), timeout=30)
        results["health"] = health.status
        broker = go_plugin_pb2_grpc.GRPCBrokerStub(channel).StartStream(iter([go_plugin_pb2.ConnInfo(service_id=1)]),
                                                                        timeout=30)
        results["broker"] = list(broker)
        for when in ("before", "after"):
            for method in ("/tfplugin6.Provider/NoSuchMethod", "/no.Such/Service"):
                try:
                    channel.unary_unary(method)(b"", timeout=30)
                except grpc.RpcError as error:
                    results[f"{method} {when}"] = error.code()
            _validate(provider)  # loads the provider core

    imported = _launch_imports(calls, tmp_path)
    assert results["health"] == health_pb2.HealthCheckResponse.SERVING
    assert results["broker"] == []
    for when in ("before", "after"):
        for method in ("/tfplugin6.Provider/NoSuchMethod", "/no.Such/Service"):
            assert results[f"{method} {when}"] == grpc.StatusCode.UNIMPLEMENTED
    assert "tokendrop_provider.plugin.service" in imported


def test_a_stale_stored_schema_is_not_served(tmp_path):
    """A stored answer for other sources (here: a made-up one under the wrong fingerprint) is ignored:
    the launch builds the schema itself and Terraform gets the real one."""
    stale = tmp_path / "schema.cache"
    stale.write_bytes(b"tokendrop-schema-cache 1\n" + b"0" * 40 + b"\n" + b"not a schema")
    answers: list[pb.GetProviderSchema.Response] = []
    imported = _launch_imports(lambda p: answers.append(p.GetProviderSchema(pb.GetProviderSchema.Request(),
                                                                             timeout=30)), tmp_path, str(stale))
    assert "tokendrop_provider.plugin.service" in imported
    assert answers[0] == ProviderService(ProviderCore()).GetProviderSchema(pb.GetProviderSchema.Request(), None)
