"""The benchmark's PNG: connected viewers, server CPU and delivered bitrate over time, per target."""

from __future__ import annotations

from typing import Any


def plot_timelines(timelines: dict[str, list[Any]], path: str) -> None:
    """``timelines``: target label -> levels, each with ``.timeline`` rows (t, connected, CPU %, Mbit/s)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(3, 1, figsize=(9, 8), sharex=True)
    for label, levels in timelines.items():
        offset = 0.0
        t: list[float] = []
        viewers: list[int] = []
        cpu: list[float] = []
        mbps: list[float] = []
        for level in levels:
            for when, connected, cpu_pct, rate in level.timeline:
                t.append(offset + when)
                viewers.append(connected)
                cpu.append(cpu_pct)
                mbps.append(rate)
            if level.timeline:
                offset += level.timeline[-1][0] + 1
        axes[0].plot(t, viewers, label=label)
        axes[1].plot(t, cpu, label=label)
        axes[2].plot(t, mbps, label=label)
    axes[0].set_ylabel("viewers connected")
    axes[1].set_ylabel("server CPU %")
    axes[2].set_ylabel("Mbit/s delivered")
    axes[2].set_xlabel("seconds (levels run back to back)")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
