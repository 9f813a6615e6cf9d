"""The deterministic zips of township workbooks and demo exports (fangpin.xlsxml)."""
from __future__ import annotations

import io
import random
import zipfile
import zlib

from fangpin import xlsxml

WHEN = (2026, 11, 1, 0, 0, 0)


def _worksheet_like(rows: int) -> bytes:
    rng = random.Random(7)
    return "".join(f'<row r="{r}"><c t="inlineStr"><is><t>{rng.choice("张王李赵")}{rng.randrange(10**6)}</t></is></c></row>'
                   for r in range(rows)).encode()


def test_a_zip_depends_only_on_its_parts_and_holds_them_deflated_at_the_chosen_level():
    parts = {"xl/worksheets/sheet1.xml": _worksheet_like(5000), "docProps/core.xml": b"<core/>"}
    first, again = xlsxml.stable_zip(parts, WHEN), xlsxml.stable_zip(dict(parts), WHEN)
    assert first == again
    with zipfile.ZipFile(io.BytesIO(first)) as archive:
        assert archive.namelist() == list(parts)
        assert {name: archive.read(name) for name in parts} == parts
        sheet = archive.getinfo("xl/worksheets/sheet1.xml")
    assert sheet.compress_type == zipfile.ZIP_DEFLATED and sheet.date_time == WHEN
    at_level = zlib.compressobj(xlsxml.ZIP_LEVEL, zlib.DEFLATED, -15)
    expected = len(at_level.compress(parts["xl/worksheets/sheet1.xml"]) + at_level.flush())
    default = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -15)
    assert expected != len(default.compress(parts["xl/worksheets/sheet1.xml"]) + default.flush())  # they differ here
    assert sheet.compress_size == expected
