"""Decoding a shard of the sharded store column by column, many records at once.

A shard (see :mod:`._store`) holds, per array of a record, three columns: the
raw bytes, the shape and the dtype. Reading it record by record costs tens of
microseconds of Python per record, which at millions of records is the whole
cost of re-aggregating a store. Here a shard's columns are turned once into
typed NumPy buffers with offsets (:class:`Column`); the rows a caller asks for
are gathered into compact buffers (:class:`Packed`), so the records built from
them share memory only with each other, never with the rest of the shard; and
step records are validated with vectorised checks over every row at once
(:func:`step_records_from_packed`).

The vectorised checks are *sufficient*, never more permissive: a row they do
not accept is decoded again on its own by the record class's
``from_payload``, whose error names what is wrong. A row is accepted only if
``from_payload`` would accept it too (the tests hold both to the same
corruptions).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ._records import RECORD_TYPES, StepRecord, _str_list


@dataclass
class Packed:
    """Some rows of one array column, gathered into one buffer.

    Attributes
    ----------
    values : ndarray, 1-D
        Every row's elements, one after another (float16 widened to float32).
    offsets : ndarray of shape (n_rows + 1,), int64
        Row ``i`` is ``values[offsets[i]:offsets[i + 1]]``.
    ndim : ndarray of shape (n_rows,), int64
    dims : ndarray of shape (n_rows, max(ndim)), int64
        Each row's shape, padded with -1.
    """

    values: np.ndarray
    offsets: np.ndarray
    ndim: np.ndarray
    dims: np.ndarray

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def pieces(self) -> list[np.ndarray]:
        """Each row's elements (views into :attr:`values`), flat."""
        bounds = self.offsets.tolist()
        values = self.values
        return [values[a:b] for a, b in zip(bounds[:-1], bounds[1:])]


def _ragged_gather(starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Indices of every ``range(start, end)`` in turn, and the new row offsets."""
    lengths = ends - starts
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    index = np.arange(offsets[-1], dtype=np.int64) + np.repeat(starts - offsets[:-1], lengths)
    return index, offsets


class Column:
    """One array field of a shard: every row's values in one typed buffer.

    Built once per shard from the Arrow columns (no Python object per cell):
    the data buffer viewed as the field's dtype, element offsets, each row's
    shape, and whether every value is finite. A column whose rows do not all
    share one dtype (never written by this library, but possible) has no typed
    buffer; its rows are decoded one by one from their bytes.
    """

    def __init__(self, data, shapes, dtypes):
        import pyarrow as pa

        data = data.combine_chunks()
        n = len(data)
        self.present = ~data.is_null().to_numpy(zero_copy_only=False)
        buffers = data.buffers()
        wide = pa.types.is_large_binary(data.type)
        offsets = np.frombuffer(buffers[1], dtype=np.int64 if wide else np.int32)
        self.offsets = offsets[data.offset: data.offset + n + 1].astype(np.int64)
        self.raw = (np.frombuffer(buffers[2], dtype=np.uint8) if buffers[2] is not None
                    else np.empty(0, dtype=np.uint8))
        encoded = dtypes.combine_chunks().dictionary_encode()
        self.dtype_of = [np.dtype(name) for name in encoded.dictionary.to_pylist()]
        self.codes = np.asarray(encoded.indices.fill_null(-1), dtype=np.int64)
        shapes = shapes.combine_chunks()
        self.shape_offsets = np.asarray(shapes.offsets, dtype=np.int64)
        self.shape_values = np.asarray(shapes.values.fill_null(-1), dtype=np.int64)  # offsets index it
        self.typed = None  # the whole buffer as the column's one dtype, when it has one
        self.dtype = None
        used = np.unique(self.codes[self.present])
        if len(used) == 1 and used[0] >= 0:
            dtype = self.dtype_of[int(used[0])]
            lo, hi = int(self.offsets[0]), int(self.offsets[-1])
            if not ((self.offsets - lo) % dtype.itemsize).any():
                self.typed = self.raw[lo:hi].view(dtype)
                self.element_offsets = (self.offsets - lo) // dtype.itemsize
                self.dtype = dtype
        if self.typed is not None and self.dtype == np.float16:  # exponent bits all ones: inf/nan
            self.finite = not ((self.typed.view(np.uint16) & 0x7C00) == 0x7C00).any()
        elif self.typed is not None:
            self.finite = self.dtype.kind != "f" or bool(np.isfinite(self.typed).all())
        else:
            self.finite = not any(d.kind == "f" for d in self.dtype_of)

    def array(self, row: int) -> np.ndarray:
        """One row's array (a copy), float16 widened to float32."""
        if not self.present[row]:
            raise KeyError("a listed array is missing")
        shape = self.shape_values[self.shape_offsets[row]:self.shape_offsets[row + 1]].tolist()
        code = int(self.codes[row])
        if code < 0:
            raise ValueError("an array without a dtype")
        lo, hi = int(self.offsets[row]), int(self.offsets[row + 1])
        value = self.raw[lo:hi].view(self.dtype_of[code]).reshape(shape).copy()
        return value.astype(np.float32) if value.dtype == np.float16 else value

    def pack(self, rows: np.ndarray) -> Packed | None:
        """The rows gathered into one buffer, or None when the column has no typed buffer
        or a row lacks the array."""
        if self.typed is None or not self.present[rows].all():
            return None
        starts, ends = self.element_offsets[rows], self.element_offsets[rows + 1]
        if len(rows) and (starts[1:] == ends[:-1]).all():  # consecutive rows: one slice
            values = self.typed[starts[0]:ends[-1]].copy()
            offsets = np.concatenate([starts, ends[-1:]]) - starts[0]
        else:
            index, offsets = _ragged_gather(starts, ends)
            values = self.typed[index]
        if values.dtype == np.float16:
            values = values.astype(np.float32)
        lo, hi = self.shape_offsets[rows], self.shape_offsets[rows + 1]
        ndim = hi - lo
        width = int(ndim.max()) if len(ndim) else 0
        dims = np.full((len(rows), width), -1, dtype=np.int64)
        shape_index, _ = _ragged_gather(lo, hi)
        dims[np.repeat(np.arange(len(rows)), ndim), shape_index - np.repeat(lo, ndim)] = \
            self.shape_values[shape_index]
        return Packed(values, offsets, ndim, dims)


def step_records_from_packed(packed: dict[str, Packed], fields: dict[str, Sequence], *,
                             finite: bool) -> list[StepRecord | None]:
    """Step records of many rows at once; None for a row the checks do not accept.

    Every check of :meth:`StepRecord.from_payload` is made over all rows with
    NumPy. ``fields`` holds the metadata, one list per field (``n_valid``,
    ``text``, ``parsed``, ``unknown``) aligned with the rows. ``finite`` says
    whether the float columns were found finite as a whole (else every row is
    left to ``from_payload``). A None row must be decoded by ``from_payload``,
    which says what is wrong with it.
    """
    n = len(fields["n_valid"])
    if not finite or n == 0:
        return [None] * n
    ok = np.ones(n, dtype=bool)
    for name, (kind, ndim) in StepRecord._ARRAY_KINDS.items():
        column = packed.get(name)
        if column is None or column.values.dtype.kind != kind or column.dims.shape[1] < ndim:
            return [None] * n
        dims = column.dims[:, :ndim]
        ok &= (column.ndim == ndim) & (dims >= 0).all(axis=1)
        ok &= dims.prod(axis=1) == column.lengths
    scores, positions, labels = (packed["position_scores"], packed["step_positions"],
                                 packed["step_labels"])
    n_pos = packed["generated_ids"].lengths
    n_rows, n_cols = scores.dims[:, 0], scores.dims[:, 1]
    ok &= (n_rows == n_pos) & (packed["label_mass"].lengths == n_pos) & (n_pos >= 1)
    ok &= n_cols >= 2
    valid = []
    texts, parsed, unknown = fields["text"], fields["parsed"], fields["unknown"]
    for i, (value, length) in enumerate(zip(fields["n_valid"], n_pos.tolist())):
        good = (type(value) is int and 0 <= value <= length and type(texts[i]) is str
                and _str_list(parsed[i]) and _str_list(unknown[i]))  # Python ints: NumPy's are slow
        valid.append(value if good else -1)
    n_valid = np.array(valid, dtype=np.int64)
    ok &= n_valid >= 0
    n_steps = positions.lengths
    ok &= labels.lengths == n_steps
    row = np.repeat(np.arange(n), n_steps)  # whose step each element is
    p = positions.values
    rising = np.ones(len(p), dtype=bool)
    rising[1:] = (row[1:] != row[:-1]) | (p[1:] > p[:-1])
    ok &= ~_any_per_row(row, (p < 0) | (p >= n_valid[row]) | ~rising, n)
    row = np.repeat(np.arange(n), labels.lengths)  # counted apart: lengths may differ
    lab = labels.values
    order = np.lexsort((lab, row))
    srow, slab = row[order], lab[order]
    repeated = np.zeros(len(lab), dtype=bool)
    repeated[1:] = (srow[1:] == srow[:-1]) & (slab[1:] == slab[:-1])
    ok &= ~_any_per_row(row, (lab < 0) | (lab >= n_cols[row]), n)
    ok &= ~_any_per_row(srow, repeated, n)
    pieces = {name: packed[name].pieces() for name in StepRecord._ARRAYS}
    out: list[StepRecord | None] = [None] * n
    rows_, cols_, valid_ = n_rows.tolist(), n_cols.tolist(), n_valid.tolist()
    scores_, ids_, positions_, labels_, mass_, hidden_ = (
        pieces[name] for name in ("position_scores", "generated_ids", "step_positions",
                                  "step_labels", "label_mass", "hidden"))
    for i in np.flatnonzero(ok).tolist():
        out[i] = StepRecord(
            position_scores=scores_[i].reshape(rows_[i], cols_[i]), generated_ids=ids_[i],
            n_valid=valid_[i], step_positions=positions_[i], step_labels=labels_[i],
            label_mass=mass_[i], hidden=hidden_[i], text=texts[i],
            parsed=tuple(parsed[i]), unknown=tuple(unknown[i]))
    return out


def _any_per_row(row: np.ndarray, flags: np.ndarray, n: int) -> np.ndarray:
    """Per row of ``n``, whether any of its elements (``row`` says whose) is flagged."""
    return np.bincount(row[flags], minlength=n) > 0


def key_digests(column) -> np.ndarray:
    """A shard's key column as fixed-width bytes (``S64``), without a Python string per key."""
    import pyarrow as pa

    column = column.combine_chunks()
    if column.null_count:
        raise ValueError("a shard holds a row without a key")
    if pa.types.is_string(column.type) and len(column):
        offsets = np.frombuffer(column.buffers()[1], dtype=np.int32)
        offsets = offsets[column.offset: column.offset + len(column) + 1]
        if (np.diff(offsets) == 64).all():
            return np.frombuffer(column.buffers()[2], dtype="S64", count=len(column),
                                 offset=int(offsets[0])).copy()
    keys = column.to_pylist()
    if any(len(k.encode()) != 64 for k in keys):
        raise ValueError("a shard holds a key that is not 64 characters")
    return np.array(keys, dtype="S64")


_META_TYPES = {int: "int64", str: "string"}


def split_meta(metas: Sequence[dict]) -> tuple[list[str], dict[str, tuple[list, str]]]:
    """Metadata of a batch of records as shard columns.

    A field that every record has, always as an integer, a string or a list
    of strings, gets a column of its own (``m.<field>``: read back without
    parsing JSON); the rest of each record's metadata stays a JSON object.

    Returns
    -------
    rest : list of str
        Each record's JSON object of the other fields (``"{}"`` when none).
    columns : dict
        ``field -> (values, arrow type name)``.
    """
    columns = {}
    for field in (metas[0] if metas else {}):
        values = [meta.get(field) for meta in metas]
        kinds = {type(v) for v in values}
        if len(kinds) != 1 or not all(field in meta for meta in metas):
            continue
        kind = kinds.pop()
        if kind in _META_TYPES:  # (a bool's type is bool, not int)
            if kind is int and not all(-2**63 <= v < 2**63 for v in values):
                continue
            columns[field] = (values, _META_TYPES[kind])
        elif kind is list and all(_str_list(v) for v in values):
            columns[field] = (values, "list<string>")
    rest = [json.dumps({k: v for k, v in meta.items() if k not in columns}) for meta in metas]
    return rest, columns


class Shard:
    """A shard's rows decoded column by column; :meth:`records` builds many records at once."""

    def __init__(self, arrow):
        self.digests = key_digests(arrow.column("key"))
        self.kinds = arrow.column("kind").to_pylist()
        self.rest = arrow.column("meta").to_pylist()
        self.fields = {name[2:]: arrow.column(name).to_pylist()
                       for name in arrow.column_names if name.startswith("m.")}
        self.columns = {name[2:]: Column(arrow.column(name), arrow.column("s." + name[2:]),
                                         arrow.column("d." + name[2:]))
                        for name in arrow.column_names if name.startswith("a.")}
        self.finite = all(column.finite for column in self.columns.values())

    def meta(self, row: int) -> dict:
        """One row's metadata: its JSON object and its field columns."""
        meta = json.loads(self.rest[row])
        if not isinstance(meta, dict):
            raise ValueError("metadata is not a JSON object")
        for field, values in self.fields.items():
            if values[row] is None:
                continue
            if field in meta:
                raise ValueError(f"metadata field {field!r} is given twice")
            meta[field] = values[row]
        return meta

    def record(self, row: int, key: str, kind):
        """One row's record, decoded on its own; raises ValueError/KeyError/TypeError."""
        record_type = self._record_type(row, key, kind)
        arrays = {name: column.array(row) for name, column in self.columns.items()
                  if column.present[row]}
        return record_type.from_payload(arrays, self.meta(row), check_finite=not self.finite)

    def _record_type(self, row: int, key: str, kind) -> type:
        if self.digests[row] != key.encode():
            raise ValueError("the index points at another key")
        record_type = RECORD_TYPES.get(self.kinds[row])
        if record_type is None:
            raise ValueError(f"unknown record kind {self.kinds[row]!r}")
        if kind is not None and record_type is not kind:
            raise ValueError(f"entry holds a {record_type.__name__}, expected {kind.__name__}")
        return record_type

    def records(self, rows: Sequence[int], keys: Sequence[str], kind) -> list:
        """The record of every row, or the exception that says why it cannot be read.

        Step records whose rows pass the vectorised checks are built from
        compact buffers; every other row goes through :meth:`record`.
        """
        out: list = [None] * len(rows)
        names = ("n_valid", "text", "parsed", "unknown")
        if kind in (None, StepRecord) and all(name in self.fields for name in names) and all(
                name in self.columns for name in StepRecord._ARRAYS):
            same = (self.digests[np.asarray(rows, dtype=np.int64)]
                    == np.array(keys, dtype="S64")).tolist() if len(rows) else []
            kinds, rest = self.kinds, self.rest
            fast = [i for i, row in enumerate(rows)
                    if same[i] and kinds[row] == "StepRecord" and rest[row] == "{}"]
            chosen = np.asarray([rows[i] for i in fast], dtype=np.int64)
            packed = {name: self.columns[name].pack(chosen) for name in StepRecord._ARRAYS}
            if fast and all(p is not None for p in packed.values()):
                fields = {name: [self.fields[name][r] for r in chosen.tolist()] for name in names}
                built = step_records_from_packed(packed, fields, finite=self.finite)
                for i, record in zip(fast, built, strict=True):
                    out[i] = record
        for i, row in enumerate(rows):
            if out[i] is None:
                try:
                    out[i] = self.record(row, keys[i], kind)
                except (KeyError, ValueError, TypeError) as exc:
                    out[i] = exc
        return out
