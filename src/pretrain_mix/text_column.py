"""Getting each row's text out of an Arrow batch, vectorised, and counting rows that have none."""

from __future__ import annotations

import string
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

STRING_TYPES = (pa.types.is_string, pa.types.is_large_string, pa.types.is_string_view)


def _is_string(dtype: pa.DataType) -> bool:
    return any(check(dtype) for check in STRING_TYPES)


def _is_scalar(dtype: pa.DataType) -> bool:
    return pa.types.is_integer(dtype) or pa.types.is_floating(dtype) or pa.types.is_boolean(dtype)


def column_at(table: pa.Table, path: str) -> pa.ChunkedArray | None:
    """The column at a dotted path (`meta.body` reads field body of struct column meta).

    A top-level column whose name contains the dot wins. None when the path does not exist.
    """
    # Columns stay chunked: combining the chunks of every batch would copy all its text.
    if path in table.column_names:
        return table.column(path)
    head, *rest = path.split(".")
    if head not in table.column_names:
        return None
    array = table.column(head)
    for name in rest:
        if not pa.types.is_struct(array.type) or array.type.get_field_index(name) < 0:
            return None
        array = pc.struct_field(array, name)
    return array


@dataclass
class TextBatch:
    """Texts of one batch: `text` is null wherever `usable` is False."""

    text: pa.Array | pa.ChunkedArray
    usable: np.ndarray
    missing: int  # field absent or null
    not_string: int  # a value, but not text (number in text_field, list, struct)
    empty: int  # empty or only whitespace


def _classify(text: pa.Array | pa.ChunkedArray | None, num_rows: int) -> TextBatch:
    if text is None:
        return TextBatch(pa.nulls(num_rows, pa.string()), np.zeros(num_rows, bool), num_rows, 0, 0)
    missing = text.null_count
    if not _is_string(text.type):
        return TextBatch(
            pa.nulls(num_rows, pa.string()),
            np.zeros(num_rows, bool),
            missing,
            num_rows - missing,
            0,
        )
    # utf8_is_space is false for "", so empty strings are tested by length.
    blank = pc.or_(pc.equal(pc.binary_length(text), 0), pc.utf8_is_space(text))
    usable = pc.fill_null(pc.invert(blank), False).to_numpy(zero_copy_only=False)
    empty = num_rows - missing - int(usable.sum())
    return TextBatch(text, usable, missing, 0, empty)


def texts_from_field(table: pa.Table, text_field: str) -> TextBatch:
    return _classify(column_at(table, text_field), table.num_rows)


def texts_from_template(table: pa.Table, template: str) -> TextBatch:
    """Render e.g. "{problem}\\n\\n{generated_solution}" for every row at once.

    A row whose placeholders are not all present yields no text (counted as missing);
    numbers and booleans are formatted as strings, other types count as not_string.
    """
    num_rows = table.num_rows
    pieces: list[pa.ChunkedArray | pa.Scalar] = []
    not_string = np.zeros(num_rows, bool)
    for literal, name, _spec, _conv in string.Formatter().parse(template):
        if literal:
            pieces.append(pa.scalar(literal, pa.large_string()))
        if name is None:
            continue
        column = column_at(table, name)
        if column is None:
            return _classify(None, num_rows)
        if _is_scalar(column.type):
            column = pc.cast(column, pa.large_string())
        elif _is_string(column.type):
            column = pc.cast(column, pa.large_string())
        else:
            not_string |= column.is_valid().to_numpy(zero_copy_only=False)
            column = pa.nulls(num_rows, pa.large_string())
        pieces.append(column)
    rendered = pc.binary_join_element_wise(*pieces, pa.scalar("", pa.large_string()))
    batch = _classify(rendered, num_rows)
    # Rows with a non-text column were counted as missing (null) above; re-label them.
    relabel = int(not_string.sum())
    batch.missing -= relabel
    batch.not_string += relabel
    return batch


def extract_texts(table: pa.Table, text_field: str | None, text_template: str | None) -> TextBatch:
    if text_template:
        return texts_from_template(table, text_template)
    return texts_from_field(table, text_field or "text")
