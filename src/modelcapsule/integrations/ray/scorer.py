"""The Ray Data actor: one loaded model per actor, scoring one batch at a time.

Each actor loads the capsule once, with every check (the same :func:`modelcapsule.load_capsule` as
``capsule predict``), then scores each batch through the batch module's own loop
(:func:`modelcapsule.batch.score.score_chunks`), so value parsing, missing-value handling, output column
names and rejected-row reasons are those of the local path, not a copy of them.

A batch comes back with exactly one row per input row, in order: the prediction columns (null on a
rejected row) plus :data:`REASON` and :data:`INPUT` (null on a scored row). The driver, which sees the
batches in input order, turns batch positions into row numbers of the whole input and splits scored rows
from rejected ones.
"""

from __future__ import annotations

from collections.abc import Generator, Mapping, Sequence
from typing import Any, Literal

import numpy as np
import pyarrow as pa

from ...batch.columns import ColumnPlan
from ...batch.score import RejectsWriter, score_chunks
from ...batch.table import Chunk, ColumnKind

__all__ = ["INPUT", "REASON", "CapsuleScorer"]

REASON = "__modelcapsule_reject_reason"
"""Column of a scored batch holding why a row was rejected (null when it was scored)."""
INPUT = "__modelcapsule_reject_input"
"""Column of a scored batch holding a rejected row's input values as JSON (null when it was scored)."""


class CapsuleScorer:
    """A callable class for ``Dataset.map_batches``: loads the capsule in ``__init__`` (once per actor)."""

    def __init__(
        self,
        path: str,
        *,
        plan: ColumnPlan,
        kind: ColumnKind,
        methods: Sequence[str],
        trusted: Sequence[str] = (),
        on_mismatch: Literal["warn", "error", "ignore"] = "warn",
        verify: bool = True,
        trust_code: bool = False,
    ) -> None:
        from ...load import load_capsule

        self.predictor = load_capsule(
            path, trusted=list(trusted), on_mismatch=on_mismatch, verify=verify, trust_code=trust_code
        ).predictor
        self.plan = plan
        self.kind = kind
        self.methods = tuple(methods)

    def __call__(self, batch: pa.Table) -> pa.Table:
        n = batch.num_rows
        chunk = Chunk(
            rows=np.arange(1, n + 1, dtype=np.int64),
            columns={c: batch.column(c) for c in self.plan.read_columns},
        )
        scored, rejected = _Collect(), _Collect()
        score_chunks(
            self.predictor,
            _OneChunk(chunk, self.plan, self.kind),
            self.plan,
            scored,
            methods=self.methods,
            tabular_output=True,
            rejects=RejectsWriter(rejected),
            tick=_no_progress,
        )
        predictions = pa.concat_tables(scored.tables)
        if not rejected.tables:
            nulls = pa.nulls(n, pa.string())
            return predictions.append_column(REASON, nulls).append_column(INPUT, nulls)
        rejects = pa.concat_tables(rejected.tables)
        positions = np.asarray(rejects.column("row"), dtype=np.int64) - 1
        taken = np.full(n, -1, dtype=np.int64)
        kept = np.ones(n, dtype=bool)
        kept[positions] = False
        taken[kept] = np.arange(int(kept.sum()), dtype=np.int64)
        expanded = predictions.take(pa.array(taken, mask=~kept))
        reasons = np.full(n, None, dtype=object)
        inputs = np.full(n, None, dtype=object)
        reasons[positions] = rejects.column("reason").to_pylist()
        inputs[positions] = rejects.column("input").to_pylist()
        return expanded.append_column(REASON, pa.array(reasons, pa.string())).append_column(
            INPUT, pa.array(inputs, pa.string())
        )


def _no_progress(rows_done: int) -> None:
    """Progress is shown by Ray Data, per operator."""


class _Collect:
    """A ChunkWriter that keeps the tables it is given."""

    def __init__(self) -> None:
        self.tables: list[pa.Table] = []

    def write(self, data: pa.Table | np.ndarray[Any, Any]) -> None:
        if not isinstance(data, pa.Table):
            raise TypeError("Ray Data batches are tables")
        self.tables.append(data)

    def close(self) -> None:
        """Nothing to finish."""


class _OneChunk:
    """A ChunkReader over one batch already in memory."""

    def __init__(self, chunk: Chunk, plan: ColumnPlan, kind: ColumnKind) -> None:
        self.name = plan.source
        self.kind = kind
        self.columns = plan.read_columns
        self.types: Mapping[str, pa.DataType] = {}
        self.total_rows: int | None = len(chunk)
        self.total_bytes: int | None = None
        self.array_shape = None
        self.array_dtype = None
        self._chunk = chunk

    def bytes_read(self) -> int:
        return 0

    def chunks(self, columns: tuple[str, ...]) -> Generator[Chunk, None, None]:
        yield self._chunk

    def close(self) -> None:
        """Nothing to release."""
