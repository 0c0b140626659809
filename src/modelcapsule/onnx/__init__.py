"""ONNX: export at save time (``export``) and onnxruntime serving (``runtime``); both need the onnx extra."""
