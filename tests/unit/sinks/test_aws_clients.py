"""The AWS sinks' clients come from botocore sessions (one per profile) that share one data loader, so
the service models and endpoint rules are parsed once per process (sinks/aws.py; the measurement is in
docs/performance.md). Every client still works against moto, including clients created from many
threads at once and clients of a profile read from a credentials file."""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path

import pytest

from tokendrop_provider.sandbox.servers import MotoServer
from tokendrop_provider.settings import AwsSettings
from tokendrop_provider.sinks.aws import DEFAULT_RETRY, invoke
from tokendrop_provider.sinks.secrets_manager import secrets_manager_client
from tokendrop_provider.sinks.secrets_manager_rules import SecretsManagerSettings
from tokendrop_provider.sinks.ssm import SsmRetryPolicy, clear_client_cache, ssm_client

ONCE = SsmRetryPolicy(botocore_mode="standard", botocore_max_attempts=1)


def test_clients_share_one_loader_and_each_works(ssm_settings: AwsSettings, clean_moto: MotoServer,
                                                 tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A profile whose keys only a credentials file holds: a session of its own, the same loader.
    credentials = tmp_path / "credentials"
    credentials.write_text("[other]\naws_access_key_id = test\naws_secret_access_key = test\n")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "absent-config"))
    clear_client_cache()  # sessions read the files above afresh
    profile = dataclasses.replace(ssm_settings, profile="other", access_key_id=None, secret_access_key=None)
    clients = {
        "ssm": ssm_client(ssm_settings),
        "ssm, sent once": ssm_client(ssm_settings, ONCE),
        "ssm, another region": ssm_client(dataclasses.replace(ssm_settings, region="eu-west-1")),
        "ssm, profile": ssm_client(profile),
        "secretsmanager": secrets_manager_client(ssm_settings, SecretsManagerSettings(endpoint_url=clean_moto.url)),
    }
    assert len({id(client) for client in clients.values()}) == len(clients)
    loaders = {name: id(client._loader) for name, client in clients.items()}  # botocore's, per client
    assert len(set(loaders.values())) == 1, loaders
    assert clients["ssm, another region"].meta.region_name == "eu-west-1"
    for name, client in clients.items():
        if name == "secretsmanager":
            assert invoke(client, DEFAULT_RETRY, "ListSecrets")["SecretList"] == []
        else:
            invoke(client, DEFAULT_RETRY, "PutParameter", Name=f"/t/{len(name)}-{name[:3]}", Value="v",
                   Type="String", Overwrite=True)
    assert invoke(clients["ssm, profile"], DEFAULT_RETRY, "GetParameter", Name="/t/3-ssm")["Parameter"]["Value"] == "v"


def test_clients_created_from_many_threads_at_once(ssm_settings: AwsSettings) -> None:
    # botocore sessions are not thread-safe for client creation: the factory serializes it. Eight first
    # clients (eight regions: eight cache keys) are created together, and each one answers.
    regions = ["us-east-1", "us-east-2", "us-west-1", "us-west-2", "eu-west-1", "eu-central-1",
               "ap-south-1", "ca-central-1"]
    barrier = threading.Barrier(len(regions))
    answers: dict[str, int] = {}
    errors: list[BaseException] = []

    def create(region: str) -> None:
        barrier.wait()
        try:
            client = ssm_client(dataclasses.replace(ssm_settings, region=region))
            answers[region] = len(invoke(client, DEFAULT_RETRY, "DescribeParameters")["Parameters"])
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=create, args=(region,)) for region in regions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert answers == dict.fromkeys(regions, 0)
