"""Bulk xlsx XML: worksheet text built with Polars expressions, and zips whose bytes depend only on their parts.

Shared by the demo's fake department exports (`fangpin.demo.write_fast_xlsx`) and the township workbooks
(`fangpin.workbooks`), so text escaping, openpyxl's illegal-character rule and the deterministic zip are written
once. Cell layouts stay with their writers: the demo mimics a plain department export, the workbooks mirror what
openpyxl itself writes for a styled cell.
"""
from __future__ import annotations

import io
import struct
import zipfile
from datetime import datetime

import polars as pl
from isal import isal_zlib  # ISA-L's deflate: the workbooks' parts ~4x faster than zlib's
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.writer.excel import ExcelWriter

from fangpin.values import regex_literal

# openpyxl's ILLEGAL_CHARACTERS_RE (control characters XML 1.0 cannot hold) as a Polars/Rust pattern, derived
# from openpyxl's own regex so the fast path drops exactly the characters openpyxl's cell writer drops.
ILLEGAL_XML_PATTERN = "[" + regex_literal("".join(
    chr(code) for code in range(0x80) if ILLEGAL_CHARACTERS_RE.fullmatch(chr(code)))) + "]"


def xml_legal(expr: pl.Expr) -> pl.Expr:
    """Text without the characters XML 1.0 cannot hold (openpyxl drops them the same way)."""
    return expr.str.replace_all(ILLEGAL_XML_PATTERN, "")


def xml_text(expr: pl.Expr) -> pl.Expr:
    """Text escaped for an XML text node: & < > (what ElementTree, and so openpyxl, escapes in text)."""
    return (expr.str.replace_all("&", "&amp;", literal=True).str.replace_all("<", "&lt;", literal=True)
            .str.replace_all(">", "&gt;", literal=True))


# Deflate level of the zips written here, ISA-L's (0-3): deflated by ISA-L (python-isal, as the reader inflates
# worksheets) instead of zlib. A province county's nine township workbooks (30 MB of XML): zlib's level 3 0.158
# CPU-s for 3.86 MB, ISA-L's level 2 0.036 CPU-s for 4.38 MB; ISA-L's level 3 0.083 s for 4.36 MB (bench/FINDINGS.md,
# session 22; zlib's default level 6 had taken 0.54 s, session 8).
ZIP_LEVEL = 2
_MAX_ZIP32 = 0xFFFFFFFF  # sizes and offsets past this need ZIP64, which no workbook comes near
ZIP_UTF8_NAME = 0x800  # the flag bit of a zip entry whose name is UTF-8 (else code page 437)
_ZIP_VERSION = 20  # the version zipfile writes as needed to extract, and as made by, for a deflated entry
_MADE_ON_UNIX = 3  # the "made by" system zipfile writes on Linux (the permissions are Unix ones)


def _dos_date_time(date_time: tuple[int, ...]) -> tuple[int, int]:
    """A zip entry's MS-DOS time and date fields, as zipfile writes them (two-second resolution)."""
    year, month, day, hour, minute, second = date_time[:6]
    return (hour << 11) | (minute << 5) | (second // 2), ((year - 1980) << 9) | (month << 5) | day


def stable_zip(parts: dict[str, bytes], date_time: tuple[int, ...]) -> bytes:
    """A zip whose bytes depend only on the parts: entries in the given order, fixed times and permissions.

    zipfile deflates only through zlib, so the three records of each entry (local header, central directory entry,
    end record) are written here, with the fields zipfile writes for a ZipInfo with these times and permissions;
    the data is deflated by ISA-L. tests/test_xlsxml.py reads the result back through zipfile (CRCs checked)."""
    time_field, date_field = _dos_date_time(date_time)
    body, directory = io.BytesIO(), []
    for name, data in parts.items():
        encoded, flags = (name.encode("ascii"), 0) if name.isascii() else (name.encode("utf-8"), ZIP_UTF8_NAME)
        deflater = isal_zlib.compressobj(ZIP_LEVEL, isal_zlib.DEFLATED, -15)
        deflated = deflater.compress(data) + deflater.flush()
        crc, offset = isal_zlib.crc32(data), body.tell()
        if max(len(data), len(deflated), offset) >= _MAX_ZIP32:
            raise ValueError(f"{name}: too large for a zip without ZIP64")
        fields = (flags, zipfile.ZIP_DEFLATED, time_field, date_field, crc, len(deflated), len(data), len(encoded))
        # zipfile's own record layouts: struct formats and signatures of its module
        body.write(struct.pack(zipfile.structFileHeader, zipfile.stringFileHeader, _ZIP_VERSION, 0, *fields, 0)
                   + encoded + deflated)
        directory.append(struct.pack(zipfile.structCentralDir, zipfile.stringCentralDir, _ZIP_VERSION, _MADE_ON_UNIX,
                                     _ZIP_VERSION, 0, *fields, 0, 0, 0, 0, 0o644 << 16, offset) + encoded)
    start, listing = body.tell(), b"".join(directory)
    if len(directory) > 0xFFFF or start + len(listing) >= _MAX_ZIP32:
        raise ValueError("too many or too large parts for a zip without ZIP64")
    body.write(listing + struct.pack(zipfile.structEndArchive, zipfile.stringEndArchive, 0, 0, len(directory),
                                     len(directory), len(listing), start, 0))
    return body.getvalue()


def openpyxl_parts(workbook, stamp: datetime) -> dict[str, bytes]:
    """The parts of a saved openpyxl workbook, in its order, with the document's created and modified dates both
    `stamp` (`save` would stamp `modified` with the current time).

    The parts are written into a stored zip, not deflated: `save` deflates them, only for them to be inflated here
    again (~1.3 of a township workbook's ~33 ms CPU); `stable_zip` deflates the final parts once.
    """
    if workbook.write_only and not workbook.worksheets:  # as `workbook.save` does
        workbook.create_sheet()
    workbook.properties.created = workbook.properties.modified = stamp
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        ExcelWriter(workbook, archive).write_data()  # what `save` writes, into a zip that does not deflate
    with zipfile.ZipFile(io.BytesIO(buffer.getvalue())) as archive:
        return {name: archive.read(name) for name in archive.namelist()}
