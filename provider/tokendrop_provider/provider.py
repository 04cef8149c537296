"""The provider core: the registered resources, the provider block's configuration, and the clients
shared by all calls.

One process serves one Terraform command (or part of one), possibly many calls at once; clients
and rate limiters are built once, on first use, and shared by every concurrent call (`Clients`).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping

from .attributes import ProviderSchema, validate_config
from .delivery import Delivery, Listings
from .errors import ConfigError
from .registry import provider_schema
from .registry.clients import Clients
from .registry.issuers import resources as registered_resources
from .resources.base import Resource
from .settings import Settings


class ProviderCore:
    def __init__(self, resources: Mapping[str, Resource] | None = None) -> None:
        self.provider_schema: ProviderSchema = provider_schema()
        self.resources = dict(resources) if resources is not None else registered_resources()
        self.settings: Settings | None = None
        self.terraform_version = ""
        self.clients = Clients(self.require_configured)
        self.delivery = Delivery(Listings())

    @property
    def cancel(self) -> threading.Event:
        return self.clients.cancel

    def validate_config(self, config: Mapping[str, object]) -> list[ConfigError]:
        return validate_config(self.provider_schema.attributes, config)

    def configure(self, config: Mapping[str, object], terraform_version: str = "") -> None:
        self.settings = Settings.resolve(config)
        self.terraform_version = terraform_version

    def require_configured(self) -> Settings:
        if self.settings is None:  # Terraform always configures first; tests and tools may not
            self.settings = Settings.resolve({})
        return self.settings
