"""Chunking never changes a prediction: any batch size, any format, the same rows and values."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from batchdata import FEATURES, Saved
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelcapsule.batch import score_file
from modelcapsule.load import load_capsule


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory, frame: pd.DataFrame) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("chunking")
    paths = {fmt: folder / f"in.{fmt}" for fmt in ("csv", "parquet", "jsonl", "npy")}
    features = frame[FEATURES]
    features.to_csv(paths["csv"], index=False)
    features.to_parquet(paths["parquet"], row_group_size=45)
    features.to_json(paths["jsonl"], orient="records", lines=True, double_precision=15)
    np.save(paths["npy"], features.to_numpy())
    return paths


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batch_rows=st.integers(min_value=1, max_value=260), fmt=st.sampled_from(["csv", "parquet", "jsonl", "npy"]))
def test_any_batch_size_gives_the_whole_table_predictions(
    tmp_path: Path, inputs: dict[str, Path], frame: pd.DataFrame, classifier: Saved, batch_rows: int, fmt: str
) -> None:
    predictor = load_capsule(classifier.path, verify=False).predictor
    out = tmp_path / f"out-{fmt}-{batch_rows}.parquet"
    summary = score_file(predictor, inputs[fmt], out, batch_rows=batch_rows, method=["predict", "predict_proba"])
    assert summary.rows == len(frame)
    got = pq.read_table(out).to_pandas()
    assert got["predict"].tolist() == classifier.model.predict(frame[FEATURES]).tolist()
    proba = got[[c for c in got.columns if c.startswith("predict_proba_")]].to_numpy()
    np.testing.assert_array_equal(proba, classifier.model.predict_proba(frame[FEATURES]))
