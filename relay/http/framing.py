"""Who may put our pages in a frame: the ``Content-Security-Policy: frame-ancestors`` headers.

The player (``/watch/{stream}``) is what a shop embeds (``player_demo/embed.js``), so it may be
framed by the sites of ``[server] embed_origins``: any site by default (``*``: a public player,
like a video site's embed), or only the listed ones. The pages that hold a key (the host
console, the browser publisher) are never framed by another site, whatever that option says:
a page of another origin could otherwise lay its own buttons over Show, Ban or Go live
(clickjacking). ``'self'`` stays allowed everywhere, for the server's own pages.

``frame-ancestors`` is checked against every ancestor, not just the parent, and browsers that
know it ignore ``X-Frame-Options``; so this one header is the whole rule. Pure: config in,
header value out.
"""

from __future__ import annotations

ANY = "*"
# The host console and the publisher: this server's own pages only.
CONSOLE_POLICY = "frame-ancestors 'self'"


def player_policy(embed_origins: tuple[str, ...]) -> str:
    """The ``Content-Security-Policy`` of the watch page for these (validated) origins."""
    if ANY in embed_origins:
        return "frame-ancestors *"
    return " ".join(("frame-ancestors", "'self'", *embed_origins))
