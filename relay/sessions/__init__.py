"""Who publishes and who watches: streams, the registry, viewer sessions and their policies.

Pure cores: ``admission`` (limit accounting), ``rungs`` (rung choice), ``abr`` (adaptive choice),
``tokens`` (viewer tokens). Around them ``stream``, ``registry``, ``viewer`` and ``ticker`` own
the tasks and move events.
"""
