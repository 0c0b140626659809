"""``capsule predict --ray`` on a real local Ray cluster writes what ``capsule predict`` writes.

Same capsule, same input: the Ray Data path (files read in parallel, one loaded model per actor, batches
scored by the batch module's own loop) must give the same output file, the same rejects file with the
same row numbers, and the same errors as the local path.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from sklearn.ensemble import RandomForestClassifier

import modelcapsule as mc
from modelcapsule.batch import RejectedRowError
from modelcapsule.cli import cli
from modelcapsule.integrations.ray import predict_dataset

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(300),
    # Ray's own noise, not ours: its DataContext warns about its own deprecated fields when copied, and
    # its Serve models use a pydantic feature pydantic deprecates.
    pytest.mark.filterwarnings("ignore::DeprecationWarning:ray.data.context"),
    pytest.mark.filterwarnings("ignore::pydantic.warnings.PydanticDeprecatedSince20"),
]
FEATURES = ["a", "b", "c", "d"]


@pytest.fixture(scope="module")
def cluster() -> Iterator[None]:
    """One local cluster for the module (predict_dataset uses a session it finds and leaves it running)."""
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def capsule(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rng = np.random.default_rng(5)
    x = pd.DataFrame(rng.normal(size=(300, 4)).round(4), columns=FEATURES)
    y = np.where(x["a"] + x["b"] > 0, "up", "down")
    path = tmp_path_factory.mktemp("ray-data") / "trend.capsule"
    mc.save(RandomForestClassifier(n_estimators=8, max_depth=5, random_state=0).fit(x, y), path, sample=x[:10])
    return path


def frame(n: int, seed: int, first_id: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    data = pd.DataFrame(rng.normal(size=(n, 4)).round(4), columns=FEATURES)
    data.insert(0, "id", np.arange(first_id, first_id + n))
    return data


def test_csv_output_and_rejects_are_byte_for_byte_those_of_the_local_path(
    cluster: None, capsule: Path, tmp_path: Path
) -> None:
    data = frame(3000, seed=1).astype(object)
    data.loc[6, "b"] = "oops"  # row 7 and row 2501 cannot be parsed: both paths set them aside
    data.loc[2500, "d"] = "1.5.2"
    source = tmp_path / "input.csv"
    data.to_csv(source, index=False)
    common = {"method": ["predict", "predict_proba"], "id_column": "id", "batch_rows": 700}
    local = mc.predict_file(capsule, source, tmp_path / "local.csv", rejects=tmp_path / "local-rejects.csv", **common)
    ray = predict_dataset(capsule, [source], tmp_path / "ray.csv", rejects=tmp_path / "ray-rejects.csv", **common)
    assert (ray.rows, ray.scored, ray.rejected) == (local.rows, local.scored, local.rejected) == (3000, 2998, 2)
    assert (tmp_path / "ray.csv").read_bytes() == (tmp_path / "local.csv").read_bytes()
    assert (tmp_path / "ray-rejects.csv").read_bytes() == (tmp_path / "local-rejects.csv").read_bytes()
    assert pd.read_csv(tmp_path / "ray-rejects.csv")["row"].tolist() == [7, 2501]


def test_a_folder_of_parquet_files_scores_as_one_table_in_name_order(
    cluster: None, capsule: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "parts"
    folder.mkdir()
    parts = [frame(1200, seed=2, first_id=0), frame(800, seed=3, first_id=1200)]
    for i, part in enumerate(parts):
        part.to_parquet(folder / f"part-{i}.parquet", index=False)
    (folder / "_SUCCESS").write_text("", encoding="utf-8")  # markers and hidden files are not data
    whole = tmp_path / "whole.parquet"
    pd.concat(parts).to_parquet(whole, index=False)
    mc.predict_file(capsule, whole, tmp_path / "local.parquet", id_column="id", method="predict_proba")
    summary = predict_dataset(
        capsule, [folder], tmp_path / "ray.parquet", id_column="id", method="predict_proba", batch_rows=500
    )
    assert summary.rows == summary.scored == 2000
    assert pq.read_table(tmp_path / "ray.parquet").equals(pq.read_table(tmp_path / "local.parquet"))


def test_a_bad_row_without_a_rejects_file_stops_the_run_naming_it(
    cluster: None, capsule: Path, tmp_path: Path
) -> None:
    data = frame(900, seed=4).astype(object)
    data.loc[611, "c"] = "oops"
    source = tmp_path / "bad.csv"
    data.to_csv(source, index=False)
    with pytest.raises(RejectedRowError, match="612") as local:
        mc.predict_file(capsule, source, tmp_path / "local.csv", columns=FEATURES, batch_rows=250)
    with pytest.raises(RejectedRowError) as remote:
        predict_dataset(capsule, [source], tmp_path / "ray.csv", columns=FEATURES, batch_rows=250)
    assert str(remote.value) == str(local.value)
    assert not list(tmp_path.glob("ray.csv*")) and not list(tmp_path.glob(".ray.csv*"))  # no partial output


def test_the_command_line_scores_several_inputs_on_ray(cluster: None, capsule: Path, tmp_path: Path) -> None:
    first, second = tmp_path / "1.parquet", tmp_path / "2.parquet"
    frame(300, seed=6).to_parquet(first, index=False)
    frame(200, seed=7, first_id=300).to_parquet(second, index=False)
    out = tmp_path / "scores.jsonl"
    result = CliRunner().invoke(
        cli, ["predict", str(capsule), str(first), str(second), "-o", str(out), "--ray", "--id-column", "id",
              "--no-progress", "--json"],
    )
    assert result.exit_code == 0, result.output
    scored = pd.read_json(out, lines=True)
    assert scored["id"].tolist() == list(range(500))
    assert set(scored.columns) == {"id", "predict"}


def test_what_does_not_fit_is_refused_before_any_work(capsule: Path, tmp_path: Path) -> None:
    narrow = tmp_path / "narrow.parquet"
    pq.write_table(pa.table({"a": [1.0], "b": [2.0]}), narrow)
    result = CliRunner().invoke(cli, ["predict", str(capsule), str(narrow), "-o", str(tmp_path / "o.csv"), "--ray"])
    assert result.exit_code == 1
    assert "lacks column(s) 'c', 'd'" in result.output
    result = CliRunner().invoke(cli, ["predict", str(capsule), str(narrow), "--ray"])
    assert result.exit_code == 2
    assert "-o OUTPUT" in result.output
