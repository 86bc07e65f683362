"""Small things several end-to-end tests need: a P-256 certificate, a viewer offer, external peers."""

from __future__ import annotations

import asyncio
import datetime
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from aiortc import RTCConfiguration, RTCPeerConnection
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

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
