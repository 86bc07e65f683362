"""WHIP ingest: publisher sessions and the decoded media they deliver."""
