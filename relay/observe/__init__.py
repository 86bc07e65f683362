"""What the process reports about itself: Prometheus ``metrics``, event-loop lag (``looplag``),
open descriptors, sockets and tasks (``process``)."""
