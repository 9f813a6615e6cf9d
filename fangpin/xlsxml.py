"""Bulk xlsx XML: worksheet text built with Polars expressions, and zips whose bytes depend only on their parts.

Shared by the demo's fake department exports (`fangpin.demo.write_fast_xlsx`) and the township workbooks
(`fangpin.workbooks`), so text escaping, openpyxl's illegal-character rule and the deterministic zip are written
once. Cell layouts stay with their writers: the demo mimics a plain department export, the workbooks mirror what
openpyxl itself writes for a styled cell.
"""
from __future__ import annotations

import io
import re
import zipfile
from datetime import datetime

import polars as pl
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

# openpyxl's ILLEGAL_CHARACTERS_RE (control characters XML 1.0 cannot hold) as a Polars/Rust pattern, derived
# from openpyxl's own regex so the fast path drops exactly the characters openpyxl's cell writer drops.
ILLEGAL_XML_PATTERN = "[" + "".join(
    f"\\x{{{code:x}}}" for code in range(0x80) if ILLEGAL_CHARACTERS_RE.fullmatch(chr(code))) + "]"


def xml_legal(expr: pl.Expr) -> pl.Expr:
    """Text without the characters XML 1.0 cannot hold (openpyxl drops them the same way)."""
    return expr.str.replace_all(ILLEGAL_XML_PATTERN, "")


def xml_text(expr: pl.Expr) -> pl.Expr:
    """Text escaped for an XML text node: & < > (what ElementTree, and so openpyxl, escapes in text)."""
    return (expr.str.replace_all("&", "&amp;", literal=True).str.replace_all("<", "&lt;", literal=True)
            .str.replace_all(">", "&gt;", literal=True))


# Deflate level of the zips written here. zlib's default (6) spent 0.54 CPU-s on a province county's eight
# township workbooks (30 MB of XML); level 3 takes 0.21 s for files 16% larger (3.9 MB against 3.3 MB), level 1 no
# less time for 32% larger (bench/README.md, session 8).
ZIP_LEVEL = 3


def stable_zip(parts: dict[str, bytes], date_time: tuple[int, ...]) -> bytes:
    """A zip whose bytes depend only on the parts: entries in the given order, fixed times and permissions."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in parts.items():
            info = zipfile.ZipInfo(name, date_time=date_time)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, data, compresslevel=ZIP_LEVEL)  # a ZipInfo does not take the archive's level
    return buffer.getvalue()


def openpyxl_parts(workbook, stamp: datetime) -> dict[str, bytes]:
    """The parts of a saved openpyxl workbook, in its order, with the document dates fixed to `stamp`.

    openpyxl stamps `modified` with the current time; created and modified both become `stamp`.
    """
    buffer = io.BytesIO()
    workbook.save(buffer)
    fixed = stamp.strftime("%Y-%m-%dT%H:%M:%SZ").encode()
    parts = {}
    with zipfile.ZipFile(io.BytesIO(buffer.getvalue())) as archive:
        for name in archive.namelist():
            data = archive.read(name)
            if name == "docProps/core.xml":
                data = re.sub(rb"(<dcterms:(?:created|modified)[^>]*>)[^<]*(</dcterms:)", rb"\g<1>" + fixed + rb"\g<2>",
                              data)
            parts[name] = data
    return parts
