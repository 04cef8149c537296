"""End-to-end fixtures: the whole sandbox (TFE emulator, moto SSM, OpenBao) and readers of the sinks
that go straight to the servers, bypassing tokendrop, to check what was really delivered."""

from __future__ import annotations

from dataclasses import dataclass

import boto3
import hvac
import pytest
import requests

from tokendrop_provider.sandbox.buildkite import BuildkiteEmulator
from tokendrop_provider.sandbox.entra import EntraEmulator
from tokendrop_provider.sandbox.servers import MotoServer, OpenBaoServer
from tokendrop_provider.sandbox.tfe import TfeEmulator
from tokendrop_provider.sandbox.tokenvault import TokenVaultEmulator


@dataclass
class Sandbox:
    tfe: TfeEmulator
    moto: MotoServer
    bao: OpenBaoServer
    baseline: frozenset[str] = frozenset()  # token ids minted before this test (the emulator is shared)
    buildkite: BuildkiteEmulator | None = None  # set by tests that use Buildkite (tests/e2e/test_buildkite.py)
    tokenvault: TokenVaultEmulator | None = None  # set by tests that use Token Vault (tests/e2e/test_tokenvault.py)
    entra: EntraEmulator | None = None  # set by tests that use Microsoft Entra (tests/e2e/test_entra.py)

    @property
    def env(self) -> dict[str, str]:
        buildkite = {} if self.buildkite is None else self.buildkite.ready_info()["env"]
        tokenvault = {} if self.tokenvault is None else self.tokenvault.ready_info()["env"]
        entra = {} if self.entra is None else self.entra.ready_info()["env"]
        return {"TFE_ADDRESS": self.tfe.url, "TFE_TOKEN": self.tfe.sandbox_token, **buildkite, **tokenvault, **entra,
                **self.moto.env(), **self.bao.env()}

    def ssm(self):  # type: ignore[no-untyped-def]
        return boto3.client("ssm", endpoint_url=self.moto.url, region_name="us-east-1",
                            aws_access_key_id="test", aws_secret_access_key="test")

    def ssm_value(self, name: str) -> tuple[str, int] | None:
        try:
            p = self.ssm().get_parameter(Name=name, WithDecryption=True)["Parameter"]
        except self.ssm().exceptions.ParameterNotFound:
            return None
        return p["Value"], p["Version"]

    def vault(self) -> hvac.Client:
        return hvac.Client(url=self.bao.url, token=self.bao.root_token)

    def vault_value(self, path: str, mount: str = "secret") -> tuple[dict, int] | None:
        try:
            r = self.vault().secrets.kv.v2.read_secret_version(path=path, mount_point=mount,
                                                               raise_on_deleted_version=True)
        except hvac.exceptions.InvalidPath:
            return None
        return r["data"]["data"], r["data"]["metadata"]["version"]

    def token_value(self, token_id: str) -> str:
        """The value the emulator minted for a token id (sandbox-only knowledge)."""
        for entry in self.tfe.minted():
            if entry["id"] == token_id:
                return entry["value"]
        raise KeyError(token_id)

    def minted(self) -> list[dict]:
        """Tokens minted during this test: id, value, scope, revoked."""
        return [m for m in self.tfe.minted() if m["id"] not in self.baseline]

    def minted_values(self) -> list[str]:
        return [m["value"] for m in self.minted()]

    def revoke_out_of_band(self, token_id: str) -> None:
        """Revoke a token through the TFE API, as someone in the UI would."""
        response = requests.delete(f"{self.tfe.url}/api/v2/authentication-tokens/{token_id}",
                                   headers={"Authorization": f"Bearer {self.tfe.sandbox_token}"}, timeout=10)
        assert response.status_code == 204, response.text

    def live_tokens(self, pool_id: str) -> list[str]:
        return self.tfe.pool_tokens(pool_id)

    def writes(self) -> list[dict]:
        """Every emulated-API call that could change something."""
        return [r for r in self.tfe.requests() if r["method"] in ("POST", "PATCH", "PUT", "DELETE")]


@pytest.fixture
def sandbox(fresh_tfe_emulator: TfeEmulator, clean_moto: MotoServer, openbao_server: OpenBaoServer,
            ) -> Sandbox:
    box = Sandbox(fresh_tfe_emulator, clean_moto, openbao_server,
                  frozenset(m["id"] for m in fresh_tfe_emulator.minted()))
    client = box.vault()
    try:  # every test starts with an empty secret/ mount
        keys = client.secrets.kv.v2.list_secrets(path="", mount_point="secret")["data"]["keys"]
    except hvac.exceptions.InvalidPath:
        keys = []
    for key in keys:
        _delete_tree(client, key)
    return box


def _delete_tree(client: hvac.Client, key: str) -> None:
    if key.endswith("/"):
        for child in client.secrets.kv.v2.list_secrets(path=key, mount_point="secret")["data"]["keys"]:
            _delete_tree(client, key + child)
    else:
        client.secrets.kv.v2.delete_metadata_and_all_versions(path=key, mount_point="secret")
