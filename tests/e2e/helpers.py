"""Small things several end-to-end tests need: certificates (a P-256 PEM pair; DTLS certificates
for aiortc peers, such as OBS's X.509 v2 one), a viewer offer, external peers."""

from __future__ import annotations

import asyncio
import datetime
import json
import os
import shutil
import warnings
from pathlib import Path
from typing import Any

import pytest
from aiortc import RTCConfiguration, RTCPeerConnection
from aiortc.rtcdtlstransport import RTCCertificate, RTCDtlsFingerprint
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from OpenSSL import crypto

from ingest.peer import FINGERPRINT_DIGESTS, fingerprint_of

INTEROP = Path(__file__).resolve().parents[1] / "interop"


def p256_certificate(directory: Path, common_name: str = "localhost") -> tuple[Path, Path]:
    """A self-signed P-256 certificate and key, as PEM files in ``directory``."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


class DerCertificate(RTCCertificate):
    """An aiortc DTLS certificate given as pyOpenSSL objects, fingerprinted over its DER bytes.

    aiortc's own ``RTCCertificate`` holds a ``cryptography`` certificate, which cannot represent
    the X.509 v2 certificates OBS 30.2 presents; OpenSSL (``_create_ssl_context``) takes either.
    ``wrong_sha256`` advertises a sha-256 fingerprint that does not match: a tampered offer.
    """

    def __init__(self, key: ec.EllipticCurvePrivateKey, cert: crypto.X509, *, wrong_sha256: bool = False) -> None:
        super().__init__(key, cert)  # type: ignore[arg-type]
        self._der = crypto.dump_certificate(crypto.FILETYPE_ASN1, cert)
        self._wrong_sha256 = wrong_sha256

    @property
    def expires(self) -> datetime.datetime:
        return datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=1)

    def getFingerprints(self) -> list[RTCDtlsFingerprint]:
        prints = [RTCDtlsFingerprint(a, fingerprint_of(self._der, a)) for a in FINGERPRINT_DIGESTS]
        if self._wrong_sha256:
            value = prints[0].value
            prints[0] = RTCDtlsFingerprint("sha-256", ("00" if value[:2] != "00" else "11") + value[2:])
        return prints


def x509_v2_certificate(*, wrong_sha256: bool = False) -> DerCertificate:
    """A self-signed P-256 DTLS certificate whose X.509 version field is 1 (v2), as OBS 30.2's."""
    key = ec.generate_private_key(ec.SECP256R1())
    pkey = crypto.PKey.from_cryptography_key(key)
    cert = crypto.X509()
    # pyOpenSSL deprecates building certificates, but cryptography's builder only makes v3 ones,
    # and a v2 certificate is the point here.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        cert.set_version(1)
        cert.set_serial_number(int.from_bytes(os.urandom(8), "big"))
        cert.get_subject().CN = "libdatachannel"
        cert.set_issuer(cert.get_subject())
        cert.gmtime_adj_notBefore(-3600)
        cert.gmtime_adj_notAfter(86400)
        cert.set_pubkey(pkey)
        cert.sign(pkey, "sha256")
    assert cert.get_version() == 1
    return DerCertificate(key, cert, wrong_sha256=wrong_sha256)


def use_certificate(pc: RTCPeerConnection, certificate: RTCCertificate) -> None:
    """Make ``pc`` present ``certificate`` (before it has any transceiver); aiortc has no API."""
    assert not pc.getTransceivers()
    pc._RTCPeerConnection__certificates = [certificate]  # type: ignore[attr-defined]


async def viewer_offer() -> str:
    """A recvonly video offer from a peer that never applies the answer (so never connects)."""
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.addTransceiver("video", direction="recvonly")
    await pc.setLocalDescription(await pc.createOffer())
    sdp: str = pc.localDescription.sdp
    await pc.close()
    return sdp


def node_with(module: str) -> str:
    """The ``node`` binary, if ``module`` is installed in tests/interop; else skip the test."""
    node = shutil.which("node")
    if node is None or not (INTEROP / "node_modules" / module).is_dir():
        pytest.skip(f"needs Node.js and {module} (./dev.sh test runs npm ci in tests/interop)")
    return node


class ExternalPeer:
    """A peer in another process that reports on stdout, one JSON object per line."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    @classmethod
    async def start(cls, *command: str) -> ExternalPeer:
        process = await asyncio.create_subprocess_exec(
            *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        return cls(process)

    async def next(self, timeout_s: float) -> dict[str, Any]:
        """The next JSON line it prints (fails with its stderr if it exits instead)."""
        assert self.process.stdout is not None
        line = await asyncio.wait_for(self.process.stdout.readline(), timeout_s)
        if not line:
            raise AssertionError(f"peer exited: {await self._stderr()}")
        report: dict[str, Any] = json.loads(line)
        return report

    async def result(self, timeout_s: float) -> dict[str, Any]:
        """Wait for it to end (status 0) and return the last JSON line it printed."""
        out, err = await asyncio.wait_for(self.process.communicate(), timeout_s)
        assert self.process.returncode == 0, err.decode()[-3000:]
        report: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
        return report

    async def close(self) -> None:
        if self.process.returncode is None:
            self.process.kill()
            await self.process.wait()

    async def _stderr(self) -> str:
        assert self.process.stderr is not None
        return (await self.process.stderr.read()).decode()[-3000:]
