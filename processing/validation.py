"""Landed stream objects -> typed, validated transactions, and every rejected line by reason.

Two readers, one set of rules. Most objects are clean: pyarrow parses them in C into typed
columns and the checks run vectorized (far faster than json.loads per line). An object
pyarrow cannot type (a string where a number belongs, a cut-off record, bad UTF-8, a
duplicated key) is read again line by line with json.loads, which decides each record on its
own. Either way every non-blank line ends as exactly one valid row or one rejected line.

Rules, first reason wins: `bad_json` (not a JSON object) > `missing_field` (a required
field absent or null) > `wrong_type` (a number that is not a finite number, a string that
is empty or not a string, is_international not 0/1, a timestamp that is not ISO 8601) >
`negative_amount` > `future_timestamp` (after the reader's `not_after`: a clock that is
wrong, not a payment to learn from) > `conflicting_duplicate` (a transaction_id that
several otherwise valid records carry with different contents: every copy is rejected,
since nothing says which is right). Identical copies of one record (a resent batch) are
kept once and counted as `duplicate`, not quarantined. An object that cannot be decoded
at all (truncated or damaged gzip) is rejected whole as `corrupt_object`, by name, with
the lines that could be salvaged; the others are read as if it were not there.
"""
from __future__ import annotations

import io
import json
import math
import re
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pa_json

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the container's code dir is flat

from records import CorruptObject, decode_object, gunzip  # noqa: E402

SCHEMA = pa.schema([
    ("transaction_id", pa.string()),
    ("timestamp", pa.string()),
    ("customer_id", pa.string()),
    ("terminal_id", pa.string()),
    ("amount", pa.float64()),
    ("merchant_category", pa.string()),
    ("location_distance_km", pa.float64()),
    ("time_since_last_txn_hours", pa.float64()),
    ("is_international", pa.int64()),
    ("device_fingerprint", pa.string()),
])
STRING_FIELDS = ("transaction_id", "customer_id", "terminal_id", "merchant_category", "device_fingerprint")
NUMBER_FIELDS = ("amount", "location_distance_km", "time_since_last_txn_hours")
REQUIRED_FIELDS = tuple(SCHEMA.names)
REASONS = ("bad_json", "missing_field", "wrong_type", "negative_amount", "future_timestamp", "conflicting_duplicate", "duplicate")
QUARANTINED = REASONS[:-1]  # an identical copy is only counted: the record itself is kept
CORRUPT_OBJECT = "corrupt_object"
NAT = np.iinfo(np.int64).min  # how numpy spells "not a time" in int64
VALID = -1  # reason code of a row that passed every check; others index REASONS

_BLANK_INNER_LINE = re.compile(rb"\n[ \t\r\f\v]*\n")  # starts at a literal: searched fast
_ONE_THREAD = pa_json.ReadOptions(use_threads=False)  # objects are read two at a time already
_PARSE = pa_json.ParseOptions(explicit_schema=SCHEMA, unexpected_field_behavior="ignore")
_FAST_TIMESTAMP = "%Y-%m-%dT%H:%M:%SZ"  # what the stream sends; any other ISO 8601 goes through pandas


@dataclass
class Transactions:
    """Valid transactions sorted by (timestamp, transaction_id), the rejected lines by reason."""

    frame: pd.DataFrame  # REQUIRED_FIELDS; timestamp tz-aware UTC, numbers float, is_international int
    rejected: dict[str, list[str]] = field(default_factory=dict)  # QUARANTINED reason -> lines
    lines: int = 0  # non-blank lines read (of readable objects)
    duplicates: int = 0  # identical copies dropped
    corrupt_objects: list[dict] = field(default_factory=list)  # {"object", "error", "salvaged"}

    def counts(self) -> dict[str, int]:
        """Every reason with its count: records, except corrupt_object (objects)."""
        return {**{r: len(self.rejected.get(r, [])) for r in QUARANTINED}, "duplicate": self.duplicates, CORRUPT_OBJECT: len(self.corrupt_objects)}


@dataclass
class _Batch:
    table: pa.Table  # SCHEMA, one row per non-blank line (nulls where a record was unusable)
    reason: np.ndarray  # int8 per row: VALID or an index into REASONS
    source: Path | bytes | list[str]  # where the lines can be read back for quarantine
    name: str = ""  # the object's name (path under the raw directory, or S3 key)
    corrupt: CorruptObject | None = None  # set when the object could not be decoded at all
    timestamps: np.ndarray = field(init=False)  # int64 ns since the epoch, NAT where not a time

    def __post_init__(self) -> None:
        self.timestamps = _classify(self.table, self.reason)  # in the reading thread, beside the next object


def read_transactions(raw_dir: Path, not_after: pd.Timestamp | None = None) -> Transactions:
    """Every object under `raw_dir` (any depth, sorted by path), gzip or plain. Two objects
    at a time: gunzip and pyarrow release the GIL."""
    paths = sorted(p for p in raw_dir.rglob("*") if p.is_file())
    with ThreadPoolExecutor(2) as pool:
        batches = pool.map(lambda path: _parse_object(path.read_bytes(), path, str(path.relative_to(raw_dir))), paths)
        return validate_batches(list(batches), not_after)


def validate_objects(bodies: list[bytes], names: list[str] | None = None, not_after: pd.Timestamp | None = None) -> Transactions:
    """The same rules over objects already in memory (e.g. read from S3, named by key)."""
    names = names or [f"object {i + 1}" for i in range(len(bodies))]
    return validate_batches([_parse_object(body, body, name) for body, name in zip(bodies, names)], not_after)


def validate(lines: list[str], not_after: pd.Timestamp | None = None) -> Transactions:
    """The same rules over lines already in memory (one object)."""
    return validate_batches([_parse_object("\n".join(lines).encode(), list(lines), "lines")], not_after)


def validate_batches(batches: list[_Batch], not_after: pd.Timestamp | None = None) -> Transactions:
    corrupt = [{"object": b.name, "error": str(b.corrupt), "salvaged": b.corrupt.salvaged} for b in batches if b.corrupt]
    batches = [b for b in batches if not b.corrupt]
    table = pa.concat_tables([b.table for b in batches]) if batches else SCHEMA.empty_table()
    reason = np.concatenate([b.reason for b in batches]) if batches else np.empty(0, np.int8)
    nanoseconds = np.concatenate([b.timestamps for b in batches]) if batches else np.empty(0, np.int64)
    if not_after is not None:
        reason[(reason == VALID) & (nanoseconds > pd.Timestamp(not_after).value)] = REASONS.index("future_timestamp")
    _mark_duplicates(table, nanoseconds, reason)

    valid = reason == VALID
    valid_rows = table.filter(pa.array(valid))
    keys = pa.table({"timestamp": nanoseconds[valid], "transaction_id": valid_rows.column("transaction_id")})
    order = pc.sort_indices(keys, sort_keys=[("timestamp", "ascending"), ("transaction_id", "ascending")])
    # Sorted in arrow, then converted: a take there is cheaper than pandas' iloc on the frame.
    frame = valid_rows.take(order).to_pandas(types_mapper=_string_as_arrow)
    frame["timestamp"] = pd.Series(keys.column("timestamp").take(order).to_numpy().view("datetime64[ns]")).dt.tz_localize("UTC")
    frame["is_international"] = frame["is_international"].astype(int)
    duplicates = int((reason == REASONS.index("duplicate")).sum())
    return Transactions(frame, _rejected_lines(batches, reason), len(reason), duplicates, corrupt)


# --- parsing one object ---------------------------------------------------------------------


def _parse_object(body: bytes, source: Path | bytes | list[str], name: str) -> _Batch:
    try:
        body = gunzip(body)
    except CorruptObject as error:
        return _Batch(SCHEMA.empty_table(), np.empty(0, np.int8), source, name, error)
    rows = body.count(b"\n") + (0 if body.endswith(b"\n") or not body else 1)
    # pyarrow skips blank lines and reads `{..}{..}` as two rows: with no blank line, equal
    # counts mean row i is line i, so a rejected row can be quarantined as its own line.
    if rows and not _has_blank_line(body):
        try:
            table = pa_json.read_json(io.BytesIO(body), read_options=_ONE_THREAD, parse_options=_PARSE)
            if table.num_rows == rows:
                return _Batch(table, np.full(rows, VALID, np.int8), source, name)
        except (pa.ArrowInvalid, UnicodeDecodeError):
            pass
    return _parse_lines(decode_object(body), source, name)


def _has_blank_line(body: bytes) -> bool:
    end = body.find(b"\n")
    first = body if end < 0 else body[:end]
    tail = body[body.rfind(b"\n") + 1 :]  # an unterminated last line ("" after a final newline)
    return not first.strip() or (tail != b"" and not tail.strip()) or _BLANK_INNER_LINE.search(body) is not None


def _parse_lines(lines: list[str], source: Path | bytes | list[str], name: str) -> _Batch:
    """json.loads per line; each record's fields typed on their own."""
    columns: dict[str, list] = {name: [] for name in REQUIRED_FIELDS}
    reason = np.full(len(lines), VALID, np.int8)
    for row, line in enumerate(lines):
        values, code = _typed_record(line)
        reason[row] = code
        for name in REQUIRED_FIELDS:
            columns[name].append(values.get(name))
    return _Batch(pa.table(columns, schema=SCHEMA), reason, source, name)


def _typed_record(line: str) -> tuple[dict, int]:
    try:
        record = json.loads(line)
    except ValueError:
        return {}, REASONS.index("bad_json")
    if not isinstance(record, dict):
        return {}, REASONS.index("bad_json")
    if any(record.get(name) is None for name in REQUIRED_FIELDS):
        return {}, REASONS.index("missing_field")
    typed = {}
    for name in STRING_FIELDS + ("timestamp",):
        if not isinstance(record[name], str):
            return {}, REASONS.index("wrong_type")
        typed[name] = record[name]
    for name in NUMBER_FIELDS:
        value = record[name]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            return {}, REASONS.index("wrong_type")
        typed[name] = float(value)
    flag = record["is_international"]
    if not isinstance(flag, int) or flag not in (0, 1):  # bool is an int: true/false are fine
        return {}, REASONS.index("wrong_type")
    typed["is_international"] = int(flag)
    return typed, VALID


# --- the checks, vectorized -------------------------------------------------------------------


def _classify(table: pa.Table, reason: np.ndarray) -> np.ndarray:
    """Set missing / wrong / negative reasons on rows still VALID; return the timestamps (ns)."""
    missing = np.zeros(len(reason), bool)
    for name in REQUIRED_FIELDS:
        missing |= filled_array(pc.is_null(table.column(name)))
    wrong = np.zeros(len(reason), bool)
    for name in STRING_FIELDS:
        wrong |= filled_array(pc.equal(pc.binary_length(table.column(name)), 0), fill=False)
    for name in NUMBER_FIELDS:
        wrong |= ~filled_array(pc.is_finite(table.column(name)), fill=True)
    wrong |= ~filled_array(pc.is_in(table.column("is_international"), pa.array([0, 1])), fill=True)
    timestamps = _nanoseconds(table.column("timestamp"))
    wrong |= (timestamps == NAT) & ~missing
    negative = filled_array(pc.less(table.column("amount"), 0.0), fill=False)
    for code, mask in ((1, missing), (2, wrong), (3, negative)):
        reason[(reason == VALID) & mask] = code
    return timestamps


def parse_utc(values: pa.ChunkedArray | pa.Array) -> pd.Series:
    """ISO 8601 strings -> tz-aware UTC timestamps (NaT where not a time)."""
    return pd.Series(_nanoseconds(values).view("datetime64[ns]")).dt.tz_localize("UTC")


def _nanoseconds(values: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """ISO 8601 strings -> int64 ns since the epoch (NAT where not a time). The stream's own
    format is parsed in C; any other ISO 8601 form falls back to pandas, row by row."""
    fast = pc.strptime(values, format=_FAST_TIMESTAMP, unit="ns", error_is_null=True)
    nanoseconds = filled_array(pc.cast(fast, pa.int64()), fill=NAT, dtype=np.int64).copy()
    retry = filled_array(pc.and_(pc.is_null(fast), pc.is_valid(values)))
    if retry.any():
        others = pd.Series(pc.filter(values, pa.array(retry)).to_pylist(), dtype=object)
        parsed = pd.to_datetime(others, utc=True, errors="coerce", format="ISO8601").dt.as_unit("ns")
        nanoseconds[retry] = parsed.array.asi8
    return nanoseconds


def _mark_duplicates(table: pa.Table, nanoseconds: np.ndarray, reason: np.ndarray) -> None:
    """Among valid rows sharing a transaction_id: all conflicting if any field differs from
    the first copy's, else every copy after the first is an identical duplicate."""
    valid = np.flatnonzero(reason == VALID)
    columns = [nanoseconds, *(table.column(name) for name in REQUIRED_FIELDS if name != "timestamp")]
    repeated, conflicting = copies(string_codes(table.column("transaction_id").take(pa.array(valid))), columns, valid)
    reason[valid[repeated & ~conflicting]] = REASONS.index("duplicate")
    reason[valid[conflicting]] = REASONS.index("conflicting_duplicate")


def copies(codes: np.ndarray, columns: list, positions: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Rows sharing a key (`codes`, numbered from 0 as `string_codes` numbers them): (repeated: a
    copy after its key's first, conflicting: of a key whose copies differ in any of `columns`).
    Row i is at `positions[i]` in the columns (numpy arrays or arrow columns without nulls);
    only repeated rows are compared."""
    if codes.max(initial=-1) + 1 == len(codes):  # as many keys as rows: no copies (the usual case)
        return np.zeros(len(codes), bool), np.zeros(len(codes), bool)
    _, first, group = np.unique(codes, return_index=True, return_inverse=True)
    repeated = np.ones(len(codes), bool)
    repeated[first] = False
    if not repeated.any():
        return repeated, np.zeros(len(codes), bool)
    at = np.arange(len(codes)) if positions is None else positions
    rows, firsts = at[repeated], at[first[group[repeated]]]
    differs = np.zeros(len(rows), bool)
    for column in columns:
        if isinstance(column, np.ndarray):
            differs |= column[rows] != column[firsts]
        else:
            differs |= ~filled_array(pc.equal(column.take(pa.array(rows)), column.take(pa.array(firsts))), fill=False)
    return repeated, np.isin(group, group[repeated][differs])


def _rejected_lines(batches: list[_Batch], reason: np.ndarray) -> dict[str, list[str]]:
    """The source line of every rejected row, by reason, in file and line order (an object
    with rejections is decoded a second time: cheaper than keeping every line in memory)."""
    rejected: dict[str, list[str]] = {name: [] for name in QUARANTINED}
    start, kept = 0, (VALID, REASONS.index("duplicate"))
    for batch in batches:
        codes = reason[start : start + batch.table.num_rows]
        start += batch.table.num_rows
        if np.isin(codes, kept).all():
            continue
        if isinstance(batch.source, list):
            lines = batch.source
        else:
            lines = decode_object(batch.source if isinstance(batch.source, bytes) else batch.source.read_bytes())
        for row in np.flatnonzero(~np.isin(codes, kept)):
            rejected[REASONS[codes[row]]].append(lines[row])
    return rejected


# --- small helpers --------------------------------------------------------------------------


def filled_array(values, fill=False, dtype=bool) -> np.ndarray:
    """A (chunked) arrow array as numpy, nulls replaced by `fill`."""
    return np.asarray(pc.fill_null(values, fill).to_numpy(zero_copy_only=False), dtype=dtype)


def string_codes(values: pa.ChunkedArray) -> np.ndarray:
    """Integer codes, equal for equal strings: 0, 1, ... in order of first appearance."""
    encoded = values.combine_chunks().dictionary_encode() if isinstance(values, pa.ChunkedArray) else values.dictionary_encode()
    return encoded.indices.to_numpy(zero_copy_only=False)


def _string_as_arrow(arrow_type: pa.DataType):
    # Strings stay in arrow memory (a Python str per value would cost several times the bytes).
    return pd.ArrowDtype(arrow_type) if pa.types.is_string(arrow_type) else None
