"""The Open Inference Protocol (V2) over gRPC: ``inference.GRPCInferenceService``.

The wire types are generated from ``grpc_service.proto`` (see ``generate.py``). Importing this package
does not import them; :mod:`.service` does, in the server process only: the generated messages share
the ``inference`` package name with other V2 clients' generated code (e.g. tritonclient), and protobuf
refuses two definitions of one name in a single process.
"""
