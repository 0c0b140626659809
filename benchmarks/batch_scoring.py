"""Batch scoring throughput: ``capsule predict`` / ``mc.predict_file`` next to the loop users write by hand.

The hand-written baseline is the usual recipe: ``joblib.load`` the model, then ``pandas.read_csv(...,
chunksize=N)`` (for Parquet, ``pyarrow.parquet.ParquetFile.iter_batches`` + ``to_pandas``), call
``model.predict`` on each chunk and append the predictions to the output file. Both sides score the
same file with the same model and chunk size. Each run is a fresh process; the table shows the median
of ``--repeat`` runs: rows/s while scoring (model already loaded), the ratio to the baseline, and the
peak resident-set growth while scoring.

    python benchmarks/batch_scoring.py --rows 1000000 --repeat 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"

CHILD = r"""
import json, sys, time

def status(key):
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    return 0

def reset_peak():
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        pass

variant, fmt, folder, batch = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
source, out = f"{folder}/data.{fmt}", f"{folder}/out-{variant}.{fmt}"
if variant == "capsule":
    import modelcapsule as mc
    from modelcapsule.load import load_capsule
    from modelcapsule.batch import score_file
    predictor = load_capsule(f"{folder}/model.capsule").predictor
    score_file(predictor, f"{folder}/warm.{fmt}", out, batch_rows=batch)  # imports and thread pools
    reset_peak(); before = status("VmRSS"); start = time.perf_counter()
    rows = score_file(predictor, source, out, batch_rows=batch).rows
else:
    import joblib, pandas as pd, pyarrow as pa, pyarrow.parquet as pq
    model = joblib.load(f"{folder}/model.joblib")

    def run(path, target):
        n = 0
        if fmt == "csv":
            first = True
            for chunk in pd.read_csv(path, chunksize=batch):
                pd.DataFrame({"predict": model.predict(chunk)}).to_csv(target, mode="w" if first else "a",
                                                                        header=first, index=False)
                first = False
                n += len(chunk)
        else:
            writer = None
            for batch_ in pq.ParquetFile(path).iter_batches(batch_size=batch):
                table = pa.table({"predict": model.predict(batch_.to_pandas())})
                writer = writer or pq.ParquetWriter(target, table.schema)
                writer.write_table(table)
                n += batch_.num_rows
            writer.close()
        return n

    run(f"{folder}/warm.{fmt}", out)
    reset_peak(); before = status("VmRSS"); start = time.perf_counter()
    rows = run(source, out)
seconds = time.perf_counter() - start
print(json.dumps({"rows": rows, "seconds": seconds, "growth": status("VmHWM") - before}))
"""


def prepare(folder: Path, rows: int, columns: int, model_kind: str) -> None:
    """Write the data as CSV and Parquet (in slices), a 150k-row warm-up copy, the capsule, a joblib file."""
    import joblib
    import numpy as np
    import pandas as pd
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.tree import DecisionTreeClassifier

    import modelcapsule as mc

    names = [f"f{i:02d}" for i in range(columns)]
    rng = np.random.default_rng(0)
    train = pd.DataFrame(rng.normal(size=(5000, columns)).round(4), columns=names)
    y = (train["f00"] + train[names[-1]] > 0).astype(int)
    if model_kind == "forest":
        model = RandomForestClassifier(n_estimators=50, max_depth=8, random_state=0).fit(train, y)
    else:
        model = DecisionTreeClassifier(max_depth=10, random_state=0).fit(train, y)
    mc.save(model, folder / "model.capsule", sample=train[:20], overwrite=True)
    joblib.dump(model, folder / "model.joblib")
    schema = pa.schema([(n, pa.float64()) for n in names])
    step = 100_000
    with (
        pacsv.CSVWriter(folder / "data.csv", schema) as c,
        pq.ParquetWriter(folder / "data.parquet", schema) as p,
    ):
        for start in range(0, rows, step):
            n = min(step, rows - start)
            block = pa.table(
                dict(zip(names, rng.normal(size=(columns, n)).round(4), strict=True)), schema=schema
            )
            c.write_table(block)
            p.write_table(block, row_group_size=min(n, 65_536))
    head = pq.read_table(folder / "data.parquet").slice(0, min(rows, 150_000))
    pacsv.write_csv(head, folder / "warm.csv")
    pq.write_table(head, folder / "warm.parquet")


def measure(variant: str, fmt: str, folder: Path, batch: int) -> dict[str, float]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(SRC), *filter(None, [env.get("PYTHONPATH")])])
    done = subprocess.run(
        [sys.executable, "-c", CHILD, variant, fmt, str(folder), str(batch)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=1800,
    )
    if done.returncode != 0:
        raise SystemExit(f"{variant}/{fmt} failed:\n{done.stderr}")
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--columns", type=int, default=20)
    parser.add_argument("--batch-rows", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--model",
        choices=["tree", "forest"],
        default="tree",
        help="tree: cheap predictions, so I/O dominates; forest: 50 trees, prediction dominates",
    )
    parser.add_argument("--workdir", type=Path, help="keep the generated files here (default: a temp dir)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="batch-bench-") as tmp:
        folder = args.workdir or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        prepare(folder, args.rows, args.columns, args.model)
        size = {fmt: (folder / f"data.{fmt}").stat().st_size / 2**20 for fmt in ("csv", "parquet")}
        print(
            f"{args.rows:,} rows x {args.columns} float64 columns "
            f"({args.rows * args.columns * 8 / 2**20:.0f} MiB "
            f"in memory; CSV {size['csv']:.0f} MiB, Parquet {size['parquet']:.0f} MiB), {args.model} model, "
            f"chunks of {args.batch_rows:,} rows, median of {args.repeat} fresh processes\n"
        )
        print(f"{'format':<8} {'scorer':<34} {'rows/s':>12} {'vs pandas':>10} {'peak growth':>12}")
        for fmt in ("csv", "parquet"):
            results = {}
            for variant in ("pandas", "capsule"):
                runs = [measure(variant, fmt, folder, args.batch_rows) for _ in range(args.repeat)]
                results[variant] = (
                    statistics.median(r["rows"] / r["seconds"] for r in runs),
                    statistics.median(r["growth"] for r in runs) / 2**20,
                )
            base = results["pandas"][0]
            labels = {
                "pandas": "joblib + pandas.read_csv loop" if fmt == "csv" else "joblib + iter_batches loop",
                "capsule": "capsule predict (predict_file)",
            }
            for variant in ("pandas", "capsule"):
                rate, growth = results[variant]
                print(
                    f"{fmt:<8} {labels[variant]:<34} {rate:>12,.0f} {rate / base:>9.2f}x {growth:>9.0f} MiB"
                )


if __name__ == "__main__":
    main()
