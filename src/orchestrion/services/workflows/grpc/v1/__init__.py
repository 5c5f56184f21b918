"""``orchestrion.v1``: ``workflows.proto`` and its generated messages and stubs."""
