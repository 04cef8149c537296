"""The per-launch TLS certificate: a fresh ECDSA P-256 key and a self-signed certificate for "localhost".

The key pair and the signature come from `cryptography`'s primitives; the certificate's DER is written
here because `cryptography.x509` alone costs about 25 ms of import time, a sixth of the provider's
budget to the handshake — and the certificate is always the same shape. Tests parse the result with
`cryptography.x509` and verify its signature.
"""

from __future__ import annotations

import datetime
import secrets

# Object identifiers, DER-encoded (tag 0x06 and length included).
_OID = {
    "ecdsa-with-SHA256": bytes.fromhex("06082a8648ce3d040302"),
    "ecPublicKey": bytes.fromhex("06072a8648ce3d0201"),
    "prime256v1": bytes.fromhex("06082a8648ce3d030107"),
    "organizationName": bytes.fromhex("060355040a"),
    "commonName": bytes.fromhex("0603550403"),
    "subjectAltName": bytes.fromhex("0603551d11"),
    "basicConstraints": bytes.fromhex("0603551d13"),
    "keyUsage": bytes.fromhex("0603551d0f"),
    "extKeyUsage": bytes.fromhex("0603551d25"),
    "serverAuth": bytes.fromhex("06082b06010505070301"),
    "clientAuth": bytes.fromhex("06082b06010505070302"),
}
_TRUE = b"\x01\x01\xff"
# keyUsage: digitalSignature (bit 0), keyEncipherment (2), keyAgreement (4), keyCertSign (5); 2 unused bits.
_KEY_USAGE_BITS = b"\x03\x02\x02\xac"


def _tlv(tag: int, content: bytes) -> bytes:
    size = len(content)
    if size < 0x80:
        return bytes((tag, size)) + content
    length = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes((tag, 0x80 | len(length))) + length + content


def _seq(*items: bytes) -> bytes:
    return _tlv(0x30, b"".join(items))


def _integer(value: int) -> bytes:
    """A non-negative INTEGER, minimally encoded (a leading zero byte only when the top bit is set)."""
    return _tlv(0x02, value.to_bytes((value.bit_length() + 8) // 8, "big"))


def _utc_time(moment: datetime.datetime) -> bytes:
    return _tlv(0x17, moment.strftime("%y%m%d%H%M%SZ").encode())


def _name(organization: str, common_name: str) -> bytes:
    def rdn(oid: bytes, value: str) -> bytes:
        return _tlv(0x31, _seq(oid, _tlv(0x0C, value.encode())))  # SET { SEQUENCE { OID, UTF8String } }

    return _seq(rdn(_OID["organizationName"], organization), rdn(_OID["commonName"], common_name))


def _extension(oid: bytes, value: bytes, critical: bool = False) -> bytes:
    return _seq(oid, *((_TRUE,) if critical else ()), _tlv(0x04, value))


def make_certificate(days: int = 30) -> tuple[bytes, bytes, bytes]:
    """(certificate DER, certificate PEM, PKCS#8 private key PEM), made in memory for one launch."""
    # Not `serialization`: its SSH key support alone cost ~4 ms of import; both encodings are written here.
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    public = key.public_key().public_numbers()
    point = b"\x04" + public.x.to_bytes(32, "big") + public.y.to_bytes(32, "big")  # X9.62 uncompressed point
    now = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    name = _name("tokendrop", "localhost")
    algorithm = _seq(_OID["ecdsa-with-SHA256"])
    tbs = _seq(
        _tlv(0xA0, _integer(2)),  # version: v3
        _integer(secrets.randbits(127) | 1),  # a positive serial number, never zero
        algorithm,
        name,
        _seq(_utc_time(now - datetime.timedelta(seconds=30)), _utc_time(now + datetime.timedelta(days=days))),
        name,
        _seq(_seq(_OID["ecPublicKey"], _OID["prime256v1"]), _tlv(0x03, b"\x00" + point)),
        _tlv(0xA3, _seq(
            _extension(_OID["subjectAltName"], _seq(_tlv(0x82, b"localhost"))),
            _extension(_OID["basicConstraints"], _seq(_TRUE), critical=True),
            _extension(_OID["keyUsage"], _KEY_USAGE_BITS, critical=True),
            _extension(_OID["extKeyUsage"], _seq(_OID["serverAuth"], _OID["clientAuth"])),
        )),
    )
    signature = key.sign(tbs, ec.ECDSA(hashes.SHA256()))
    der = _seq(tbs, algorithm, _tlv(0x03, b"\x00" + signature))
    cert_pem = _pem("CERTIFICATE", der)
    return der, cert_pem, _pem("PRIVATE KEY", _pkcs8(key.private_numbers().private_value, point))


def _pkcs8(private_value: int, point: bytes) -> bytes:
    """PKCS#8 PrivateKeyInfo (RFC 5208) of a P-256 key: the curve in the algorithm identifier, then an
    RFC 5915 ECPrivateKey (version 1, the 32-byte scalar, the public point), as OpenSSL writes it."""
    ec_private_key = _seq(_tlv(0x02, b"\x01"), _tlv(0x04, private_value.to_bytes(32, "big")),
                          _tlv(0xA1, _tlv(0x03, b"\x00" + point)))
    return _seq(_tlv(0x02, b"\x00"), _seq(_OID["ecPublicKey"], _OID["prime256v1"]), _tlv(0x04, ec_private_key))


def _pem(label: str, der: bytes) -> bytes:
    import base64

    body = base64.b64encode(der).decode()
    lines = "\n".join(body[i:i + 64] for i in range(0, len(body), 64))
    return f"-----BEGIN {label}-----\n{lines}\n-----END {label}-----\n".encode()
