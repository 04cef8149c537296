"""What a launch of the provider costs Terraform: which RPCs it can skip and what the process loads.
Measured by `make bench`; these tests check the mechanisms, never a duration."""

from __future__ import annotations

from tokendrop_provider.plugin.gen import tfplugin6_pb2 as pb
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
