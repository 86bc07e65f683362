"""Transcode: decoded publisher media in, encoded frames of each rendition out."""
