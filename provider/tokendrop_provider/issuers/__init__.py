"""API clients of the token issuers. One client per issuer; every wire detail of an issuer lives in its module."""
