"""The conversation beside the video: ``comments`` (which comments a stream accepts), ``display``
(what viewers see of a busy chat), ``likes`` (exact totals, broadcast twice a second): pure; then
``store`` (SQLite) and ``feed`` (run time: the ticker, delivery, moderation)."""
