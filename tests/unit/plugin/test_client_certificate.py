"""Why the plugin server does not verify Terraform's client certificate (docs/lifecycle.md, threat model).

Terraform (go-plugin's AutoMTLS) passes a fresh client certificate in `PLUGIN_CLIENT_CERT`: ECDSA P-521,
signed with SHA-512. grpcio's TLS (BoringSSL) does not offer the ecdsa_secp521r1_sha512 signature
algorithm, so a server that requires that certificate fails every handshake with Terraform. grpcio's
Python API has no "ask, don't verify" mode (only require-and-verify or do-not-ask), and Go's TLS client
withholds a certificate whose signature algorithm the server did not offer anyway. grpcio exposes no
setting for the signature algorithms. So there is nothing to pin, at the TLS layer or above it.

These tests pin that fact against the installed grpcio. If a grpcio release learns P-521, the first test
fails: then require the certificate (`ssl_server_credentials(..., root_certificates=PLUGIN_CLIENT_CERT,
require_client_auth=True)` in `plugin/server.py`) and turn this test around.
"""

from __future__ import annotations

import datetime
from concurrent import futures

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tokendrop_provider.plugin.certificate import make_certificate

PROBE = "/tokendrop.Probe/Ping"  # not registered: UNIMPLEMENTED proves the TLS handshake succeeded


def client_certificate(curve: ec.EllipticCurve, digest: hashes.HashAlgorithm) -> tuple[bytes, bytes]:
    """A self-signed client certificate shaped like go-plugin's (CA, localhost, client+server auth)."""
    key = ec.generate_private_key(curve)
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "HashiCorp"),
                      x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(seconds=30)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .sign(key, digest))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def handshake(tmp_path, required: bytes, presented: tuple[bytes, bytes] | None) -> grpc.StatusCode:
    """Serve on a unix socket requiring the client certificate `required`; call with the `presented`
    (certificate, key) or with none; return the call's status code."""
    _, server_pem, server_key = make_certificate()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    socket = f"unix:{tmp_path / 'probe.sock'}"
    server.add_secure_port(socket, grpc.ssl_server_credentials(
        [(server_key, server_pem)], root_certificates=required, require_client_auth=True))
    server.start()
    try:
        cert, key = presented or (None, None)
        credentials = grpc.ssl_channel_credentials(root_certificates=server_pem, private_key=key,
                                                   certificate_chain=cert)
        with grpc.secure_channel(socket, credentials, options=[("grpc.ssl_target_name_override", "localhost")]) as ch:
            try:
                ch.unary_unary(PROBE)(b"", timeout=10)
            except grpc.RpcError as err:
                return err.code()
        return grpc.StatusCode.OK
    finally:
        server.stop(grace=None)


def test_grpcio_cannot_verify_a_p521_client_certificate_like_terraforms(tmp_path):
    terraform = client_certificate(ec.SECP521R1(), hashes.SHA512())
    assert handshake(tmp_path, terraform[0], terraform) == grpc.StatusCode.UNAVAILABLE


@pytest.mark.parametrize(("curve", "digest"), [(ec.SECP256R1(), hashes.SHA256()), (ec.SECP384R1(), hashes.SHA384())])
def test_the_same_check_works_for_curves_grpcio_can_verify(tmp_path, curve, digest):
    """The control: the setup above is sound; only the curve of Terraform's certificate defeats it."""
    client = client_certificate(curve, digest)
    assert handshake(tmp_path, client[0], client) == grpc.StatusCode.UNIMPLEMENTED


def test_what_the_check_would_refuse_a_client_without_or_with_another_certificate(tmp_path):
    """What requiring the certificate would buy, could Terraform's be verified: strangers are refused."""
    required = client_certificate(ec.SECP256R1(), hashes.SHA256())[0]
    assert handshake(tmp_path, required, None) == grpc.StatusCode.UNAVAILABLE
    assert handshake(tmp_path, required, client_certificate(ec.SECP256R1(), hashes.SHA256())) == \
        grpc.StatusCode.UNAVAILABLE
