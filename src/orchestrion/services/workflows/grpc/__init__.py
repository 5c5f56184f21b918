"""The workflows service's internal gRPC API (``orchestrion.v1.WorkflowService``).

``v1/`` holds the ``.proto`` and the code generated from it (``scripts/grpc_codegen.py``);
``server.py`` serves it, ``auth.py`` verifies callers, ``convert.py`` maps messages and
errors. See docs/grpc.md.
"""
