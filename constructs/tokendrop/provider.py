"""The `tokendrop` provider block, and the offline installation of the provider for its stack."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from tokendrop_provider.install import provider_version
from tokendrop_provider.registry import provider_schema
from tokendrop_provider.schema import PROVIDER_NAME, PROVIDER_SOURCE

from . import _offline
from ._base import child_path, configure, hcl_attributes
from ._values import is_unresolved
from .core import CoreDispatch
from .errors import Problem, TokendropValidationError

if TYPE_CHECKING:
    from cdktf import TerraformProvider as _ProviderBase
else:
    _ProviderBase = object

# Where each credential comes from when the block leaves it unset (for the error below).
_ENVIRONMENT = {
    "tfe_token": "TFE_TOKEN", "buildkite_api_token": "BUILDKITE_API_TOKEN",
    "tokenvault_api_key": "TOKENVAULT_API_KEY", "aws_secret_access_key": "AWS_SECRET_ACCESS_KEY",
    "aws_session_token": "AWS_SESSION_TOKEN", "vault_token": "VAULT_TOKEN",
    "vault_approle_secret_id": "the AppRole login's environment",
}


class TokendropProvider(_ProviderBase, metaclass=CoreDispatch):
    """The tokendrop provider. Every setting falls back to the environment variable the official
    provider uses (TFE_ADDRESS/TFE_TOKEN, AWS's credential chain, VAULT_ADDR/VAULT_TOKEN, ...), so
    `TokendropProvider(self, "tokendrop")` is usually all a stack needs.

    Credentials are refused as literals, since they would be written into cdktf.out: leave them to the
    environment, or pass a reference (e.g. a sensitive `TerraformVariable`'s `string_value`).

    Creating it also arranges for the provider to be installed into the stack's directory at
    synthesis, so that `cdktf deploy` finds it with no network (see `_offline`). `portable=True` (or the
    context flag `tokendrop:portable`, or a `CloudBackend`/`RemoteBackend` on the stack) installs the
    self-contained linux_amd64 build instead, for a configuration applied on a machine without Python
    (HCP Terraform workers, another CI job); `portable=False` keeps the local launcher even then.
    """

    _core_base = "TerraformProvider"

    def __init__(self, scope: Any, id: str, *, alias: str | None = None, portable: bool | None = None,
                 **settings: Any) -> None:
        path = child_path(scope, id)
        literal_secrets = [Problem(a.name, "refusing a literal credential: it would be written into cdktf.out "
                                   "and the plan. Leave it unset to use "
                                   f"{_ENVIRONMENT.get(a.name, 'the environment')}, or pass a reference "
                                   "such as a sensitive TerraformVariable's value")
                           for a in provider_schema().attributes
                           if a.sensitive and settings.get(a.name) is not None and not is_unresolved(settings[a.name])]
        if literal_secrets:
            raise TokendropValidationError(path, literal_secrets)
        config = configure(path, provider_schema().attributes, (), settings, type(self).__name__)
        core = importlib.import_module(self._tokendrop_core)  # type: ignore[attr-defined]
        self._tokendrop_alias = alias
        self._tokendrop_config = config
        version = provider_version()
        super().__init__(scope, id, terraform_resource_type=PROVIDER_NAME,  # type: ignore[call-arg]
                         terraform_provider_source=PROVIDER_SOURCE.removeprefix("registry.terraform.io/"),
                         terraform_generator_metadata=core.TerraformProviderGeneratorMetadata(
                             provider_name=PROVIDER_NAME, provider_version=version))
        self._install_offline(core, path, portable)

    def _install_offline(self, core: Any, path: str, portable: bool | None) -> None:
        if portable is not None and not isinstance(portable, bool):
            raise TokendropValidationError(path, [Problem("portable", f"must be True or False, not {portable!r}")])
        stack = core.TerraformStack.of(self)
        executable = _offline.find_executable()
        try:
            hooked = _offline.hook_stack(stack, core, executable, portable)
        except ValueError as err:  # a bad tokendrop:portable context value
            raise TokendropValidationError(path, [Problem("portable", str(err))]) from err
        if not hooked:
            return  # a second (aliased) provider block in the same stack
        if executable is None and not portable:
            core.Annotations.of(self).add_warning(
                "terraform-provider-tokendrop is not installed in this Python environment, so the stack "
                "cannot install its provider offline: `pip install tokendrop` into the environment that "
                "runs the app, or install the provider yourself (`tokendrop provider install`).")
        config = _offline.explicit_installation_config()
        if config is not None:
            outdir = core.App.of(stack).outdir
            core.Annotations.of(self).add_warning(_offline.installation_warning(config, outdir, stack.node.id))

    # jsii reads `alias` from the object: without this override every block would be the default one.
    @property
    def alias(self) -> str | None:
        return self._tokendrop_alias

    @alias.setter
    def alias(self, value: str | None) -> None:
        self._tokendrop_alias = value

    def _synthesize_attributes(self) -> dict[str, Any]:
        return self._tokendrop_config

    def _synthesize_hcl_attributes(self) -> dict[str, Any]:
        return hcl_attributes(provider_schema().attributes, self._tokendrop_config)
