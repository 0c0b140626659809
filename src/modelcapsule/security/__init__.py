"""What may be imported or built while loading: the trust policy and everything that enforces it.

``policy`` holds the trust policy and the one function that turns an allowed ``module.qualname`` into
an object; ``defaults`` the reviewed default names; ``pickle_stream``/``pickle_scan``/``pickle_values``
parse and audit pickle streams without importing anything; ``tamper`` and ``state_checks`` check what
construction produced; ``signing`` signs and checks manifests.
"""
