"""Shared fixtures: local servers (moto, OpenBao), issuer emulators, terraform workspaces."""

pytest_plugins = ["fixtures.servers", "fixtures.emulators", "fixtures.terraform", "fixtures.frozen"]
