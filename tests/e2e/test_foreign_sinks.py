"""Sinks that hold someone else's data, through real terraform, OpenBao and moto (issue 11, defect 1).

A Vault KV v2 path with versions or custom_metadata tokendrop did not write is foreign even when its
latest version is soft-deleted or destroyed: a create there fails before anything is minted, naming the
path and what is there. With adopt_existing the token is written as the next version, and destroy then
destroys only the versions tokendrop wrote and keeps the metadata and the other versions. An SSM
parameter whose history holds versions tokendrop did not write is never deleted by destroy (SSM can
only delete a parameter with its whole history)."""

from __future__ import annotations

import pytest

from fixtures.terraform import PROVIDER_HEADER

pytestmark = pytest.mark.e2e

HEADER = PROVIDER_HEADER + """resource "tokendrop_tfe_agent_pool" "ci" {
  organization = "acme"
  name         = "ci"
}
"""
PATH = "ci/token"


def token(deliver_to: str, extra: str = "") -> str:
    return (f'resource "tokendrop_tfe_agent_token" "t" {{\n  agent_pool_id = tokendrop_tfe_agent_pool.ci.id\n'
            f"  deliver_to = {deliver_to}\n{extra}}}\n")


VAULT = f'{{ vault_kv = {{ path = "{PATH}" }} }}'
SSM = '{ ssm = { name = "/ci/token" } }'


def other_teams_secret(sandbox, latest: str) -> None:
    """Two versions written by another team, with their custom_metadata; the latest deleted or destroyed."""
    bao = sandbox.bao
    bao.api("POST", f"secret/metadata/{PATH}", {"custom_metadata": {"team": "payments"}})
    bao.api("POST", f"secret/data/{PATH}", {"data": {"token": "payments-v1"}})
    bao.api("POST", f"secret/data/{PATH}", {"data": {"token": "payments-v2"}})
    if latest == "deleted":
        bao.api("DELETE", f"secret/data/{PATH}")
    elif latest == "destroyed":
        bao.api("PUT", f"secret/destroy/{PATH}", {"versions": [2]})


def metadata(sandbox) -> dict:
    return sandbox.bao.api("GET", f"secret/metadata/{PATH}")["data"]


def version_value(sandbox, version: int) -> str | None:
    """The value of one version, None when it is deleted or destroyed (Vault answers 404)."""
    try:
        body = sandbox.bao.api("GET", f"secret/data/{PATH}?version={version}")
    except RuntimeError:
        return None
    return body["data"]["data"]["token"]


@pytest.mark.parametrize("latest", ["deleted", "destroyed"])
def test_a_secret_whose_latest_version_is_gone_is_not_taken_over(sandbox, make_workspace, latest):
    other_teams_secret(sandbox, latest)
    ws = make_workspace(sandbox.env)
    ws.write(HEADER + token(VAULT))
    ws.init()
    result = ws.apply(check=False)
    assert result.returncode == 1
    text = " ".join(result.stderr.split())
    assert f"vault_kv:secret/{PATH}#token is not empty" in text
    assert f"2 versions (2 not written by tokendrop; the latest, 2, is {latest})" in text
    assert "custom_metadata team" in text and "adopt_existing" in text
    assert sandbox.minted() == [], "refused before anything was minted"
    meta = metadata(sandbox)
    assert meta["current_version"] == 2 and meta["custom_metadata"] == {"team": "payments"}
    assert version_value(sandbox, 1) == "payments-v1"


def test_custom_metadata_alone_makes_a_path_foreign(sandbox, make_workspace):
    sandbox.bao.api("POST", f"secret/metadata/{PATH}", {"custom_metadata": {"team": "payments"}})
    ws = make_workspace(sandbox.env)
    ws.write(HEADER + token(VAULT))
    ws.init()
    result = ws.apply(check=False)
    assert result.returncode == 1
    text = " ".join(result.stderr.split())
    assert "is not empty" in text and "metadata without versions and custom_metadata team" in text
    assert sandbox.minted() == []
    assert metadata(sandbox)["custom_metadata"] == {"team": "payments"}


def test_adopted_secret_keeps_the_other_teams_versions_and_metadata_on_destroy(sandbox, make_workspace):
    other_teams_secret(sandbox, "deleted")
    ws = make_workspace(sandbox.env)
    ws.write(HEADER + token(VAULT, '  adopt_existing = true\n  rotate_on = { n = "1" }\n'))
    ws.init()
    ws.apply()
    ws.write(HEADER + token(VAULT, '  adopt_existing = true\n  rotate_on = { n = "2" }\n'))
    ws.apply()  # a rotation: versions 3 and 4 are tokendrop's
    assert sandbox.vault_value(PATH)[1] == 4
    result = ws.destroy()
    assert "destroyed only the versions tokendrop wrote (3, 4)" in " ".join(result.output.split())
    meta = metadata(sandbox)
    assert meta["custom_metadata"] == {"team": "payments"}, "our record is gone, theirs is kept"
    assert [meta["versions"][v]["destroyed"] for v in ("1", "2", "3", "4")] == [False, False, True, True]
    assert version_value(sandbox, 1) == "payments-v1"
    sandbox.bao.api("POST", f"secret/undelete/{PATH}", {"versions": [2]})
    assert version_value(sandbox, 2) == "payments-v2", "their soft-deleted version can still be undeleted"


def test_a_secret_tokendrop_created_from_empty_is_removed_whole(sandbox, make_workspace):
    ws = make_workspace(sandbox.env)
    ws.write(HEADER + token(VAULT, '  rotate_on = { n = "1" }\n'))
    ws.init()
    ws.apply()
    ws.write(HEADER + token(VAULT, '  rotate_on = { n = "2" }\n'))
    ws.apply()
    ws.destroy()
    with pytest.raises(RuntimeError, match="404"):
        metadata(sandbox)


def test_a_secret_someone_wrote_into_after_our_create_keeps_their_version(sandbox, make_workspace):
    ws = make_workspace(sandbox.env)
    ws.write(HEADER + token(VAULT))
    ws.init()
    ws.apply()
    sandbox.bao.api("POST", f"secret/data/{PATH}", {"data": {"token": "someone-else"}})
    sandbox.bao.api("DELETE", f"secret/data/{PATH}")  # and deleted again: no current value
    ws.apply(check=False)  # refresh finds the sink missing; the new create adopts nothing of theirs
    ws.destroy()
    meta = metadata(sandbox)
    assert meta["versions"]["2"]["destroyed"] is False, "the other writer's version is not destroyed"


def test_ssm_parameter_with_foreign_history_is_kept_on_destroy(sandbox, make_workspace):
    ssm = sandbox.ssm()
    ssm.put_parameter(Name="/ci/token", Value="payments-v1", Type="SecureString", Description="payments")
    ws = make_workspace(sandbox.env)
    ws.write(HEADER + token(SSM, "  adopt_existing = true\n"))
    ws.init()
    ws.apply()
    assert sandbox.ssm_value("/ci/token")[1] == 2
    result = ws.destroy()
    assert "version 1 was not written by tokendrop" in " ".join(result.output.split())
    history = ssm.get_parameter_history(Name="/ci/token", WithDecryption=True)["Parameters"]
    assert history[0]["Value"] == "payments-v1", "the other writer's history survives"


def test_ssm_parameter_tokendrop_created_is_deleted_on_destroy(sandbox, make_workspace):
    ws = make_workspace(sandbox.env)
    ws.write(HEADER + token(SSM, '  rotate_on = { n = "1" }\n'))
    ws.init()
    ws.apply()
    ws.write(HEADER + token(SSM, '  rotate_on = { n = "2" }\n'))
    ws.apply()
    ws.destroy()
    assert sandbox.ssm_value("/ci/token") is None
