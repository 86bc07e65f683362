"""Who publishes and who watches: streams, the registry, viewer sessions and their policies.

Pure cores: ``admission`` (limit accounting), ``rungs`` (rung choice), ``abr`` (adaptive choice),
``ended`` (sessions that just ended), ``nofile`` (the open-files budget). Around them ``stream``,
``registry`` and ``viewer`` own the tasks and move events.
"""
