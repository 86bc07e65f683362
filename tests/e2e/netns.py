"""A small private network for cluster tests: one bridge, one network namespace per node.

Each namespace gets its own address on the bridge (so an origin and its edges are different
hosts to each other, as in production), and the test process, in the root namespace, reaches
every node through the bridge's own address. Needs root and iproute2; ``Bridge.build`` returns
None, saying why, where that is impossible, and the caller skips or falls back to loopback.
"""

from __future__ import annotations

import os
import shutil
import subprocess


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=30)


class Bridge:
    """Owns a bridge, its veth pairs and namespaces; ``close`` removes all of them."""

    def __init__(self, tag: str, subnet: str) -> None:
        self.tag = tag
        self.subnet = subnet  # "10.214.N": hosts are .1, .2, ...; the bridge itself is .254
        self.name = f"lcb{tag}"
        self.namespaces: list[str] = []

    @property
    def address(self) -> str:
        return f"{self.subnet}.254"

    @classmethod
    def build(cls) -> tuple[Bridge | None, str]:
        if os.geteuid() != 0 or not shutil.which("ip"):
            return None, "needs root and iproute2 to build network namespaces"
        tag = str(os.getpid() % 100000)
        bridge = cls(tag, f"10.214.{os.getpid() % 250}")
        for command in (
            ["ip", "link", "add", bridge.name, "type", "bridge"],
            ["ip", "addr", "add", f"{bridge.address}/24", "dev", bridge.name],
            ["ip", "link", "set", bridge.name, "up"],
        ):
            done = _run(*command)
            if done.returncode != 0:
                bridge.close()
                return None, f"{' '.join(command)} failed: {done.stderr.strip()}"
        return bridge, ""

    def add(self, host: int) -> tuple[str | None, str]:
        """A namespace with address ``{subnet}.{host}``; returns its name (or None and why)."""
        ns = f"lc{self.tag}n{host}"
        outer, inner = f"lc{self.tag}v{host}", f"lc{self.tag}p{host}"
        commands = [
            ["ip", "netns", "add", ns],
            ["ip", "link", "add", outer, "type", "veth", "peer", "name", inner],
            ["ip", "link", "set", inner, "netns", ns],
            ["ip", "link", "set", outer, "master", self.name, "up"],
            ["ip", "netns", "exec", ns, "ip", "addr", "add", f"{self.subnet}.{host}/24", "dev", inner],
            ["ip", "netns", "exec", ns, "ip", "link", "set", inner, "up"],
            ["ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up"],
        ]
        self.namespaces.append(ns)
        for command in commands:
            done = _run(*command)
            if done.returncode != 0:
                return None, f"{' '.join(command)} failed: {done.stderr.strip()}"
        return ns, ""

    def close(self) -> None:
        for ns in self.namespaces:
            _run("ip", "netns", "del", ns)  # its end of the veth pair goes with it, and so the other end
        self.namespaces.clear()
        _run("ip", "link", "del", self.name)
