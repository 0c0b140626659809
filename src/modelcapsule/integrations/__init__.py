"""Running capsules on engines beyond one machine (DESIGN §11).

Each integration lives in its own subpackage and imports its engine only there, so ``import modelcapsule``
never imports Ray, MLflow or Kubernetes libraries:

- :mod:`modelcapsule.integrations.ray`: Ray Serve (the whole ``capsule serve`` application in every
  replica) and Ray Data (``capsule predict --ray``); needs the ``ray`` extra.
- :mod:`modelcapsule.integrations.mlflow`: MLflow models into capsules (``capsule import-mlflow``) and
  capsules as MLflow models (``save_model``/``log_model``); needs the ``mlflow`` extra.
- :mod:`modelcapsule.integrations.kserve`: KServe ``ServingRuntime`` and ``InferenceService`` manifests
  whose container runs ``capsule serve``; needs nothing beyond the core.
"""
