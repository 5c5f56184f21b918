"""The knowledge graph service: typed nodes and edges, search, paths, ranking."""
