"""A throw-away PKI for tests and ``spur local up``: a CA, a server certificate and client
certificates whose subject carries the user (CN) and the role (OU).

``cryptography`` is imported inside :func:`generate_test_pki` only, so importing this module
stays cheap and spurcore's import rules hold for everything else.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from pathlib import Path
from typing import Any

ROLES = ("admin", "operator", "user", "viewer")


def generate_test_pki(directory: str | os.PathLike[str], users: list[tuple[str, str]], *,
                      server_names: tuple[str, ...] = ("localhost",),
                      server_ips: tuple[str, ...] = ("127.0.0.1",),
                      days: int = 3650) -> dict[str, Any]:
    """Write a CA, a server certificate (for ``server_names`` and ``server_ips``) and one
    client certificate per ``(user, role)`` (CN=user, OU=role) into ``directory``.

    Returns ``{"dir", "ca_cert", "ca_key", "server_cert", "server_key",
    "clients": {user: {"cert", "key", "role"}}}`` (all paths as str).  Keys are EC P-256
    (fast to generate), written unencrypted with mode 0600.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=5)
    until = now + datetime.timedelta(days=days)

    def write_key(key: ec.EllipticCurvePrivateKey, name: str) -> str:
        path = out / name
        data = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption())
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(path, 0o600)
        return str(path)

    def write_cert(cert: x509.Certificate, name: str) -> str:
        path = out / name
        path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return str(path)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Spur test"),
        x509.NameAttribute(NameOID.COMMON_NAME, f"Spur test CA {os.urandom(4).hex()}"),
    ])
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(until)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                     crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    aki = x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski)

    def leaf(subject: x509.Name, usage: tuple[x509.ObjectIdentifier, ...],
             san: list[x509.GeneralName] | None) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now)
            .not_valid_after(until)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False, key_agreement=True,
                                         key_cert_sign=False, crl_sign=False, encipher_only=False,
                                         decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage(list(usage)), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(aki, critical=False)
        )
        if san:
            builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
        return builder.sign(ca_key, hashes.SHA256()), key

    result: dict[str, Any] = {
        "dir": str(out),
        "ca_cert": write_cert(ca_cert, "ca.pem"),
        "ca_key": write_key(ca_key, "ca.key"),
    }
    san: list[x509.GeneralName] = [x509.DNSName(n) for n in server_names]
    san += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in server_ips]
    server_subject = x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Spur test"),
        x509.NameAttribute(NameOID.COMMON_NAME, server_names[0] if server_names else "spurctld"),
    ])
    # Replicas also dial each other (a follower forwards reads to the leader) with this
    # certificate, so it is a client certificate too.
    server_cert, server_key = leaf(
        server_subject, (ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH), san
    )
    result["server_cert"] = write_cert(server_cert, "server.pem")
    result["server_key"] = write_key(server_key, "server.key")

    clients: dict[str, dict[str, str]] = {}
    for user, role in users:
        subject = x509.Name([
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Spur test"),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, role),
            x509.NameAttribute(NameOID.COMMON_NAME, user),
        ])
        cert, key = leaf(subject, (ExtendedKeyUsageOID.CLIENT_AUTH,), None)
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in user)
        clients[user] = {
            "cert": write_cert(cert, f"client-{safe}.pem"),
            "key": write_key(key, f"client-{safe}.key"),
            "role": role,
        }
    result["clients"] = clients
    return result
