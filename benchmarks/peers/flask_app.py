"""The classic Flask recipe: load a joblib file, ``@app.route("/predict")``, ``model.predict``.

Run by the serving benchmark with Flask's development server (``python -m benchmarks.peers.flask_app
PORT``) and with gunicorn (``gunicorn benchmarks.peers.flask_app:app``). The model file comes from the
``BENCH_MODEL`` environment variable.
"""

from __future__ import annotations

import os
import sys

import joblib
import numpy as np
from flask import Flask, jsonify, request

app = Flask(__name__)
model = joblib.load(os.environ["BENCH_MODEL"])


@app.route("/predict", methods=["POST"])
def predict():  # type: ignore[no-untyped-def]
    rows = np.asarray(request.get_json()["inputs"])
    return jsonify({"prediction": model.predict(rows).tolist()})


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=int(sys.argv[1]))
