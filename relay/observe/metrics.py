"""Prometheus metrics, read from the registry's own counters at scrape time.

Nothing is counted twice and nothing is added to the per-packet path: the collector turns the
same snapshot ``GET /api/streams`` serves into Prometheus families when ``/metrics`` is
scraped. Each app has its own ``CollectorRegistry`` (no process-global state).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeHistogramMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

ESTIMATE_BUCKETS_BPS = (250_000, 500_000, 750_000, 1_000_000, 1_500_000, 2_000_000, 3_000_000, 5_000_000, 10_000_000)
FEEDBACK_KINDS = ("transport-cc", "remb")


def _buckets(values: list[float]) -> list[tuple[str, float]]:
    """Cumulative bucket counts (``le`` bounds, then +Inf) of ``values``."""
    out = [(str(float(bound)), float(sum(1 for v in values if v <= bound))) for bound in ESTIMATE_BUCKETS_BPS]
    out.append(("+Inf", float(len(values))))
    return out


class LiveCartCollector(Collector):
    """Turns a registry snapshot (plus loop lag) into metric families on each scrape."""

    def __init__(self, snapshot: Callable[[], dict[str, Any]]) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        snap = self._snapshot()
        sessions = snap["sessions"]
        yield GaugeMetricFamily("livecart_publishers", "Live WHIP publisher sessions", value=sessions["publishers"])
        yield GaugeMetricFamily("livecart_viewers", "Connected WHEP viewer sessions", value=sessions["viewers"])
        yield GaugeMetricFamily(
            "livecart_sessions_negotiating", "Sessions in SDP negotiation", value=sessions["negotiating"]
        )
        live = GaugeMetricFamily("livecart_stream_live", "1 when video from a publisher arrives", labels=["stream"])
        forwarded = CounterMetricFamily(
            "livecart_frames_forwarded", "Frames handed to viewers (frames x viewers)", labels=["stream"]
        )
        packet_counters = {
            key: CounterMetricFamily(f"livecart_{key}", text, labels=["stream"])
            for key, text in (
                ("packets_forwarded", "RTP packets sent to viewers (packets x viewers)"),
                ("bytes_forwarded", "RTP payload bytes sent to viewers (bytes x viewers)"),
                ("packets_dropped", "RTP packets dropped because a viewer's socket buffer was full"),
                ("packets_retransmitted", "RTP packets resent on NACK"),
                ("repairs_held", "NACKed packets not resent: the viewer was moving down, its keyframe supersedes them"),
                ("retransmissions_refused", "NACKed packets not resent (over budget, too old, resent within an RTT)"),
                ("probe_bytes", "Bandwidth-probe bytes sent to viewers"),
                ("rung_switches", "Adaptive rung switches of viewers"),
                ("transport_cc_feedback", "Transport-cc feedback packets received from viewers"),
                ("nack_reports", "NACK reports received from viewers"),
                ("packets_nacked", "RTP packets viewers reported lost (NACK)"),
                ("viewer_keyframe_requests", "Keyframe requests (PLI/FIR) received from viewers"),
                ("join_keyframe_requests", "Keyframes asked of an encoder for a viewer's join or rung switch"),
                ("viewer_send_errors", "Viewers dropped because sending to them failed"),
                ("bad_viewer_messages", "Data-channel messages from viewers that meant nothing"),
                ("audio_frames_dropped", "Audio frames dropped because the audio encoder fell behind"),
            )
        }
        loss = GaugeMetricFamily(
            "livecart_viewer_loss_ratio",
            "Packet loss viewers report (latest receiver report)",
            labels=["stream", "stat"],
        )
        viewers = GaugeMetricFamily("livecart_rung_viewers", "Viewers per rendition", labels=["stream", "rung"])
        rung_counters = {
            key: CounterMetricFamily(f"livecart_encoder_{key}", text, labels=["stream", "rung"])
            for key, text in (
                ("frames_in", "Frames offered to the rung's encoder"),
                ("frames_out", "Frames the rung's encoder produced"),
                ("frames_dropped", "Frames dropped because the encoder was busy"),
                ("keyframes", "Keyframes produced"),
                ("keyframes_forced", "Keyframes forced by requests (joins, PLI, switches)"),
                ("bytes_out", "Encoded bytes produced"),
            )
        }
        encode_seconds = CounterMetricFamily(
            "livecart_encoder_encode_seconds", "CPU-side wall time spent encoding", labels=["stream", "rung"]
        )
        ingest_counters = {
            key: CounterMetricFamily(f"livecart_ingest_{key}", text, labels=["stream"])
            for key, text in (
                ("packets_received", "Publisher video RTP packets received"),
                ("packets_missing", "Publisher video packets found missing (before repair)"),
                ("packets_recovered", "Missing publisher packets that arrived later (NACK repairs)"),
                ("packets_unrecovered", "Missing publisher packets given up at their deadline"),
                ("packets_late", "Publisher packets that arrived after their frame was given up"),
                ("nacks", "Sequence numbers NACKed to publishers, re-NACKs included"),
                ("keyframe_requests", "Keyframe requests (PLI) sent to publishers"),
                ("frames_late", "Publisher frames given up because they could not be completed in time"),
                ("frames_skipped", "Complete publisher frames dropped while waiting for a keyframe"),
            )
        }
        ingest_loss = GaugeMetricFamily(
            "livecart_ingest_loss_ratio", "Publisher video packet loss before repair", labels=["stream"]
        )
        cards = CounterMetricFamily("livecart_card_actions", "Product card actions applied", labels=["stream"])
        # Viewers are aggregated (a label per viewer would be a new series per join, without
        # bound); each viewer's own figures are in GET /api/streams ("abr").
        estimates = GaugeHistogramMetricFamily(
            "livecart_viewer_estimate_bps",
            "Viewers by bandwidth estimate (send-side with transport-cc, else REMB)",
            labels=["stream"],
        )
        by_feedback = GaugeMetricFamily(
            "livecart_viewers_by_feedback",
            "Viewers by the feedback their estimate comes from",
            labels=["stream", "feedback"],
        )
        probes = CounterMetricFamily("livecart_probes", "Bandwidth probes by result", labels=["stream", "result"])
        switches_to = CounterMetricFamily(
            "livecart_rung_switches_to", "Adaptive rung switches, by the rung switched to", labels=["stream", "rung"]
        )
        for stream in snap["streams"]:
            name = stream["name"]
            live.add_metric([name], 1 if stream["live"] else 0)
            forwarded.add_metric([name], stream["frames_forwarded"])
            for key, family in packet_counters.items():
                family.add_metric([name], stream[key])
            loss.add_metric([name, "mean"], stream["viewer_loss_mean"])
            loss.add_metric([name, "max"], stream["viewer_loss_max"])
            cards.add_metric([name], stream.get("card_actions", 0))
            ingest = stream.get("ingest") or {}
            if ingest.get("path") == "livecart":
                for key, family in ingest_counters.items():
                    family.add_metric([name], ingest[key])
                ingest_loss.add_metric([name], ingest["loss"])
            viewers_abr = [v for v in stream.get("abr", []) if v]
            estimates.add_metric([name], _buckets([v["estimate_bps"] for v in viewers_abr]), sum(
                v["estimate_bps"] for v in viewers_abr
            ))
            for kind in FEEDBACK_KINDS:
                by_feedback.add_metric([name, kind], sum(1 for v in viewers_abr if v["feedback"] == kind))
            probes.add_metric([name, "confirmed"], stream["probes_confirmed"])
            probes.add_metric([name, "failed"], stream["probes_failed"])
            for rung, count in stream["rung_switches_to"].items():
                switches_to.add_metric([name, rung], count)
            for rung in stream["rungs"]:
                viewers.add_metric([name, rung["name"]], rung["viewers"])
                for key, family in rung_counters.items():
                    family.add_metric([name, rung["name"]], rung[key])
                encode_seconds.add_metric([name, rung["name"]], rung["encode_ms_total"] / 1000)
        yield from (
            live,
            forwarded,
            *packet_counters.values(),
            loss,
            viewers,
            *rung_counters.values(),
            encode_seconds,
            cards,
            *ingest_counters.values(),
            ingest_loss,
            estimates,
            by_feedback,
            probes,
            switches_to,
        )
        loop = snap.get("loop")
        if loop:
            yield GaugeMetricFamily(
                "livecart_loop_lag_p99_seconds", "Event-loop lag p99 (last minute)", value=loop["lag_ms_p99"] / 1000
            )
        cluster = snap.get("cluster")
        if cluster and cluster["role"] != "all":
            yield CounterMetricFamily(
                "livecart_cluster_heartbeats", "Heartbeats written to the directory", value=cluster["heartbeats"]
            )
            yield CounterMetricFamily(
                "livecart_cluster_heartbeat_failures",
                "Heartbeats that could not reach the directory",
                value=cluster["heartbeat_failures"],
            )
            yield GaugeMetricFamily(
                "livecart_cluster_directory_reachable",
                "1 while the last heartbeat reached the directory",
                value=1 if cluster["directory_reachable"] else 0,
            )
            yield GaugeMetricFamily("livecart_cluster_nodes_alive", "Live nodes seen", value=cluster["nodes_alive"])
            yield GaugeMetricFamily("livecart_cluster_pulls_out", "Streams this edge pulls", value=cluster["pulls_out"])
            yield GaugeMetricFamily("livecart_cluster_pulls_in", "Pulls this origin serves", value=cluster["pulls_in"])
            relay = cluster.get("hls_relay")
            if relay:
                yield CounterMetricFamily(
                    "livecart_edge_hls_upstream_requests",
                    "LL-HLS requests this edge made to origins (one per distinct request in flight or not cached)",
                    value=relay["upstream_requests"],
                )
                yield CounterMetricFamily(
                    "livecart_edge_hls_upstream_failures", "Relayed requests the origin did not answer",
                    value=relay["upstream_failures"],
                )  # fmt: skip
                yield CounterMetricFamily(
                    "livecart_edge_hls_cache_hits", "LL-HLS answers from this edge's cache", value=relay["cache_hits"]
                )
                yield GaugeMetricFamily(
                    "livecart_edge_hls_cache_bytes", "Bytes of LL-HLS answers cached", value=relay["cache_bytes"]
                )
        process = snap["process"]
        yield GaugeMetricFamily("livecart_udp_sockets", "Open UDP sockets", value=process["udp_sockets"])
        yield GaugeMetricFamily("livecart_asyncio_tasks", "asyncio tasks", value=process["asyncio_tasks"])
        descriptors = snap.get("descriptors") or {}
        yield GaugeMetricFamily("livecart_open_fds", "Open file descriptors", value=process["open_fds"])
        if descriptors.get("limit") is not None:
            yield GaugeMetricFamily(
                "livecart_open_fds_limit",
                "Soft RLIMIT_NOFILE (admission keeps a reserve below it)",
                value=descriptors["limit"],
            )
            yield GaugeMetricFamily(
                "livecart_open_fds_reserve", "Descriptors admission keeps free", value=descriptors["reserve"]
            )


class Metrics:
    """Owns one app's Prometheus registry: the snapshot collector and the HTTP response counter."""

    def __init__(self, snapshot: Callable[[], dict[str, Any]]) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(LiveCartCollector(snapshot))
        ProcessCollector(registry=self.registry)  # process_cpu_seconds_total, resident memory: for `livecart bench`
        self.responses = Counter(
            "livecart_http_responses", "HTTP responses by status", ["status"], registry=self.registry
        )
