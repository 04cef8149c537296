"""The hand-written DER certificate is what `cryptography.x509` would make: it parses, its signature
verifies, the key matches, and it carries the extensions go-plugin's client relies on."""

from __future__ import annotations

import datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from hypothesis import given, settings
from hypothesis import strategies as st

from tokendrop_provider.plugin.certificate import _integer, _pkcs8, make_certificate


def test_certificate_parses_verifies_and_matches_its_key():
    der, pem, key_pem = make_certificate()
    cert = x509.load_der_x509_certificate(der)
    assert cert == x509.load_pem_x509_certificate(pem)
    cert.public_key().verify(cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(hashes.SHA256()))
    key = serialization.load_pem_private_key(key_pem, None)
    assert key.public_key().public_numbers() == cert.public_key().public_numbers()
    assert cert.public_key().curve.name == "secp256r1"
    assert cert.version == x509.Version.v3 and cert.serial_number > 0
    assert cert.subject == cert.issuer
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "localhost"
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["localhost"]
    constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature and usage.key_cert_sign and usage.key_encipherment
    extended = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(extended) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    now = datetime.datetime.now(datetime.UTC)
    assert cert.not_valid_before_utc <= now < cert.not_valid_after_utc


def test_private_key_is_byte_for_byte_what_cryptography_writes():
    """The PKCS#8 PEM written by hand (to skip importing `serialization`) is the one cryptography writes
    for the same key, and grpc serves TLS with it (tests/unit/plugin/test_server.py)."""
    _, _, key_pem = make_certificate()
    key = serialization.load_pem_private_key(key_pem, None)
    assert key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()) == key_pem
    # Scalars with leading zero bytes keep their fixed 32-byte width, as in cryptography's encoding.
    for value in (1, 2**64 + 7, 2**200 + 3, 2**255 + 19):
        key = ec.derive_private_key(value, ec.SECP256R1())
        numbers = key.public_key().public_numbers()
        point = b"\x04" + numbers.x.to_bytes(32, "big") + numbers.y.to_bytes(32, "big")
        assert _pkcs8(value, point) == key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                                         serialization.NoEncryption())


def test_every_certificate_is_new():
    first, second = make_certificate(), make_certificate()
    assert first[0] != second[0] and first[2] != second[2]


@settings(max_examples=300)
@given(st.integers(min_value=0, max_value=2**160))
def test_integers_are_minimal_positive_der(value):
    encoded = _integer(value)
    assert encoded[0] == 0x02
    body = encoded[2:]
    assert int.from_bytes(body, "big", signed=True) == value
    assert not (len(body) > 1 and body[0] == 0 and body[1] < 0x80), "no superfluous leading zero"
