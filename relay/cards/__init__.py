"""Product cards: ``card`` (the value, strict validation), ``board`` (the pure state machine),
``store`` (SQLite), ``feed`` (run time: clock, rate limit, persistence, delivery)."""
