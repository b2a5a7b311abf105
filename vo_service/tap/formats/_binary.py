"""Vectorised row assembly for the VOTable BINARY and BINARY2 serializations.

A batch is turned into per-column *segments*: either a fixed number of bytes per row (numbers,
fixed arrays, the BINARY2 null mask) or a variable number (the payload of variable-length
arrays and strings, after a 4-byte count segment).  ``assemble_rows`` interleaves them into the
row-major big-endian stream with numpy slicing and scatter, never looping over rows.
"""
from __future__ import annotations

import binascii
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from vo_service.tap.formats._columns import (
    INT_NULL,
    ColumnEncoding,
    gather_ragged,
    list_parts,
    null_mask,
    pad_ragged,
    ragged_lengths,
    string_parts,
)

BIG_ENDIAN: dict[str, str] = {
    "boolean": "u1",
    "unsignedByte": "u1",
    "short": ">i2",
    "int": ">i4",
    "long": ">i8",
    "float": ">f4",
    "double": ">f8",
}


@dataclass(frozen=True)
class Segment:
    """Bytes of one column part for all rows of a batch: fixed ``width`` or per-row ``lengths``."""

    payload: np.ndarray
    width: int | None = None
    lengths: np.ndarray | None = None

    @property
    def fixed_width(self) -> int:
        """``width`` of a fixed-width segment."""
        assert self.width is not None, "a variable-length segment has no fixed width"
        return self.width

    @property
    def row_lengths(self) -> np.ndarray:
        """``lengths`` of a variable-length segment."""
        assert self.lengths is not None, "a fixed-width segment has no per-row lengths"
        return self.lengths


def null_fill(datatype: str) -> float | int:
    """The value written in place of NULL (NaN for floats, the VALUES null sentinel for ints)."""
    if datatype in ("float", "double"):
        return float("nan")
    return INT_NULL.get(datatype, 0)


def numeric_values(values: pa.Array, datatype: str) -> np.ndarray:
    """Native numpy array of numbers with NULLs replaced by the type's null fill."""
    if datatype == "boolean":
        truth = np.asarray(pc.fill_null(values, False), dtype=bool)
        out = np.where(truth, np.uint8(ord("T")), np.uint8(ord("F")))
        if values.null_count:
            out[null_mask(values)] = ord("?")
        return out
    if values.null_count:
        values = pc.fill_null(values, pa.scalar(null_fill(datatype), values.type))
    return values.to_numpy(zero_copy_only=False)


def to_big_endian(values: np.ndarray, datatype: str) -> np.ndarray:
    return np.ascontiguousarray(values, dtype=BIG_ENDIAN[datatype]).reshape(-1).view(np.uint8)


def _count_prefix(lengths: np.ndarray) -> Segment:
    return Segment(lengths.astype(">u4").view(np.uint8), width=4)


def column_segments(array: pa.Array, spec: ColumnEncoding) -> list[Segment]:
    """Segments for one normalised column (see ``_columns.normalize``)."""
    datatype = spec.datatype
    nulls = null_mask(array)
    if spec.kind == "scalar":
        width = np.dtype(BIG_ENDIAN[datatype]).itemsize
        return [Segment(to_big_endian(numeric_values(array, datatype), datatype), width=width)]
    if spec.kind == "array":
        itemsize = np.dtype(BIG_ENDIAN[datatype]).itemsize
        offsets, child = list_parts(array)
        values = numeric_values(child, datatype)
        lengths = ragged_lengths(offsets, nulls)
        if spec.count is not None:
            padded = pad_ragged(values, offsets[:-1], lengths, spec.count, _pad_value(datatype))
            return [Segment(to_big_endian(padded, datatype), width=spec.count * itemsize)]
        payload = to_big_endian(gather_ragged(values, offsets[:-1], lengths), datatype)
        return [_count_prefix(lengths), Segment(payload, lengths=lengths * itemsize)]
    if spec.is_unicode:
        offsets, data = _utf16be_parts(array)
        unit = 2
    else:
        offsets, data = string_parts(array)
        unit = 1
    lengths = ragged_lengths(offsets, nulls)
    if spec.count is not None:
        if unit == 2:
            pairs = data.view(">u2") if len(data) % 2 == 0 else data[:0].view(">u2")
            padded = pad_ragged(pairs, offsets[:-1] // 2, lengths // 2, spec.count, 0)
            if spec.count:
                cut = (padded[:, -1] >= 0xD800) & (padded[:, -1] <= 0xDBFF)
                padded[cut, -1] = 0
            return [Segment(padded.astype(">u2").view(np.uint8).reshape(-1), width=2 * spec.count)]
        padded = pad_ragged(data, offsets[:-1], lengths, spec.count, 0)
        return [Segment(padded.reshape(-1), width=spec.count)]
    payload = gather_ragged(data, offsets[:-1], lengths)
    return [_count_prefix(lengths // unit), Segment(payload, lengths=lengths)]


def _pad_value(datatype: str) -> float | int:
    fill = null_fill(datatype)
    return ord("?") if datatype == "boolean" else fill


def _utf16be_parts(array: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """UTF-16BE bytes of a string array; per value, as there is no vectorised transcoder."""
    encoded = [b"" if s is None else s.encode("utf-16-be") for s in array.to_pylist()]
    offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
    np.cumsum([len(e) for e in encoded], out=offsets[1:])
    return offsets, np.frombuffer(b"".join(encoded), dtype=np.uint8)


def null_mask_segment(arrays: list[pa.Array], n: int) -> Segment:
    """BINARY2's per-row bitmask: most significant bit of the first byte is the first column."""
    width = (len(arrays) + 7) // 8
    if not any(a.null_count for a in arrays):
        return Segment(np.zeros(n * width, dtype=np.uint8), width=width)
    flags = np.zeros((n, width * 8), dtype=bool)
    for i, a in enumerate(arrays):
        if a.null_count:
            flags[:, i] = null_mask(a)
    return Segment(np.packbits(flags, axis=1, bitorder="big").reshape(-1), width=width)


def assemble_rows(n: int, segments: list[Segment]) -> np.ndarray:
    """Interleave column segments into consecutive rows, as one uint8 array."""
    groups: list[Segment] = []
    fixed: list[Segment] = []
    for seg in segments:
        if seg.width is not None:
            fixed.append(seg)
            continue
        if fixed:
            groups.append(_fixed_block(n, fixed))
            fixed = []
        groups.append(seg)
    if fixed:
        groups.append(_fixed_block(n, fixed))
    if len(groups) == 1 and groups[0].width is not None:
        return groups[0].payload
    row_sizes = np.zeros(n, dtype=np.int64)
    for seg in groups:
        row_sizes += seg.width if seg.width is not None else seg.row_lengths
    position = np.zeros(n, dtype=np.int64)
    np.cumsum(row_sizes[:-1], out=position[1:])
    out = np.empty(int(row_sizes.sum()), dtype=np.uint8)
    for seg in groups:
        if seg.width is not None:
            if seg.width:
                index = position[:, None] + np.arange(seg.width, dtype=np.int64)
                out[index.reshape(-1)] = seg.payload
            position += seg.width
        else:
            lengths = seg.row_lengths
            total = int(lengths.sum())
            if total:
                ends = np.cumsum(lengths)
                index = np.arange(total, dtype=np.int64) + np.repeat(position - (ends - lengths), lengths)
                out[index] = seg.payload
            position += lengths
    return out


def _fixed_block(n: int, segments: list[Segment]) -> Segment:
    if len(segments) == 1:
        return segments[0]
    width = sum(s.fixed_width for s in segments)
    block = np.empty((n, width), dtype=np.uint8)
    offset = 0
    for seg in segments:
        block[:, offset : offset + seg.fixed_width] = seg.payload.reshape(n, seg.fixed_width)
        offset += seg.fixed_width
    return Segment(block.reshape(-1), width=width)


_LINE_BYTES = 57
_LINE_CHARS = 76


class Base64Lines:
    """Incremental base64 in 76-character lines; chunks are cut at whole lines so they concatenate."""

    def __init__(self) -> None:
        self._carry = b""

    def feed(self, data: bytes | np.ndarray) -> bytes:
        raw = data.data.cast("B") if not isinstance(data, bytes) else memoryview(data)
        if self._carry:
            raw = memoryview(self._carry + bytes(raw))
        whole = len(raw) - len(raw) % _LINE_BYTES
        self._carry = bytes(raw[whole:])
        if not whole:
            return b""
        encoded = np.frombuffer(binascii.b2a_base64(raw[:whole], newline=False), dtype=np.uint8)
        lines = np.empty((whole // _LINE_BYTES, _LINE_CHARS + 1), dtype=np.uint8)
        lines[:, :_LINE_CHARS] = encoded.reshape(-1, _LINE_CHARS)
        lines[:, _LINE_CHARS] = 10
        return lines.tobytes()

    def close(self) -> bytes:
        if not self._carry:
            return b""
        tail = binascii.b2a_base64(self._carry, newline=True)
        self._carry = b""
        return tail
