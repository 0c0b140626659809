"""Bridges to other tools (MLflow, Ray, KServe); each imports only modelcapsule's public API and its own extra."""
