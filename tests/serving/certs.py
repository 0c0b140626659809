"""Test certificates made with ``cryptography``: a CA, a server certificate for 127.0.0.1 and localhost,
and a client certificate, all signed by the CA, written as PEM files; and ``capsule serve`` started with
them (no V2 client imported here: tritonclient's generated messages and ours cannot share a process)."""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from .conftest import START_TIMEOUT, Server, free_port


@dataclass(frozen=True)
class Certificates:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca: Path
    """A CA that signed nothing here: clients trusting only it must refuse the server."""


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> None:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))


def _ca(common: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(_name(common)).issuer_name(_name(common))
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False, data_encipherment=False,
                                     key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _leaf(ca_key: ec.EllipticCurvePrivateKey, ca: x509.Certificate, common: str, *, server: bool
          ) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder().subject_name(_name(common)).issuer_name(ca.subject)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH if server
                                              else ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
    )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
    return key, builder.sign(ca_key, hashes.SHA256())


def make_certificates(root: Path) -> Certificates:
    root.mkdir(parents=True, exist_ok=True)
    ca_key, ca = _ca("modelcapsule test CA")
    _, other = _ca("some other CA")
    server_key, server = _leaf(ca_key, ca, "127.0.0.1", server=True)
    client_key, client = _leaf(ca_key, ca, "test client", server=False)
    pem = serialization.Encoding.PEM
    files = Certificates(root / "ca.pem", root / "server.pem", root / "server.key", root / "client.pem",
                         root / "client.key", root / "other-ca.pem")
    files.ca.write_bytes(ca.public_bytes(pem))
    files.other_ca.write_bytes(other.public_bytes(pem))
    files.server_cert.write_bytes(server.public_bytes(pem))
    files.client_cert.write_bytes(client.public_bytes(pem))
    _write_key(server_key, files.server_key)
    _write_key(client_key, files.client_key)
    return files


def start_tls_server(capsule_cmd: list[str], env: dict[str, str], log_dir: Path, certs: Certificates,
                     *args: str, client_cert: tuple[str, str] | None = None) -> Server:
    """``capsule serve ARGS`` over TLS with ``certs``, once its HTTPS health answers (with ``client_cert``
    when the server requires one)."""
    http_port, grpc_port = free_port(), free_port()
    log_dir.mkdir(parents=True, exist_ok=True)
    with open(log_dir / "stdout.txt", "wb") as out, open(log_dir / "stderr.txt", "wb") as err:
        process = subprocess.Popen(
            [*capsule_cmd, "serve", *args, "--port", str(http_port), "--grpc-port", str(grpc_port),
             "--tls-cert", str(certs.server_cert), "--tls-key", str(certs.server_key), "--no-access-log"],
            env=env, stdout=out, stderr=err,
        )
    server = Server(f"https://127.0.0.1:{http_port}", f"127.0.0.1:{grpc_port}", process, http_port, grpc_port,
                    log_dir)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"capsule serve exited:\n{server.stderr()}")
        with contextlib.suppress(requests.RequestException):
            if requests.get(server.url + "/v2/health/live", verify=str(certs.ca), cert=client_cert,
                            timeout=5).status_code == 200:
                return server
        time.sleep(0.2)
    server.stop()
    raise RuntimeError("the TLS server did not answer in time")
