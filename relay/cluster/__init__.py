"""Origins and edges: the directory of nodes and stream origins, routing, and edge pulls."""
