"""tokendrop provider: apply-time half of tokendrop."""
