"""tokendrop_entra_blueprint_certificate: a certificate credential of an agent identity blueprint.

tokendrop makes the RSA key pair and a self-signed certificate in memory, adds the public certificate to
the blueprint's `keyCredentials` (one update of the whole collection, serialized per blueprint in the
provider process) and delivers `private_key` + `certificate` (PEM) beside `client_id`, `tenant_id` and
`token_endpoint`. Rotation adds the new certificate before the old one is removed (or kept for
`keep_previous_for`, the overlap), so a reader of the sink always holds a valid one. The marker that
finds orphans of a crashed run is in the key credential's `displayName`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from .. import schema
from ..issuers.base import MintedToken
from ..registry.entra import CERTIFICATES
from ..secret import Secret
from ..validation import parse_duration
from .base import Context
from .entra_blueprint_password import BlueprintCredential

if TYPE_CHECKING:
    from ..issuers.entra import EntraCertificates


class EntraBlueprintCertificate(BlueprintCredential):
    schema = schema.ENTRA_BLUEPRINT_CERTIFICATE
    shown = "thumbprint"

    def issuer(self, ctx: Context) -> EntraCertificates:
        return ctx.clients.of(CERTIFICATES)

    def secret_fields(self, minted: MintedToken) -> dict[str, Secret | str]:
        pem = minted.value.reveal()
        cut = pem.index("-----BEGIN CERTIFICATE")
        return {"private_key": Secret(pem[:cut]), "certificate": pem[cut:]}

    def mint_options(self, ctx: Context, state: Mapping[str, object]) -> dict[str, object]:
        valid_for, bits = state.get("valid_for"), state.get("rsa_bits")
        return {"valid_for": parse_duration(valid_for) if isinstance(valid_for, str) else None,
                "rsa_bits": int(bits) if isinstance(bits, int | float) else 2048}
