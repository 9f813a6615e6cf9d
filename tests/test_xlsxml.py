"""The deterministic zips of township workbooks and demo exports (fangpin.xlsxml)."""
from __future__ import annotations

import io
import random
import struct
import zipfile
import zlib

import pytest
from isal import isal_zlib

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
        assert archive.testzip() is None  # every entry's CRC checked
        assert archive.namelist() == list(parts)
        assert {name: archive.read(name) for name in parts} == parts
        sheet = archive.getinfo("xl/worksheets/sheet1.xml")
    assert sheet.compress_type == zipfile.ZIP_DEFLATED and sheet.date_time == WHEN
    at_level = isal_zlib.compressobj(xlsxml.ZIP_LEVEL, isal_zlib.DEFLATED, -15)
    expected = len(at_level.compress(parts["xl/worksheets/sheet1.xml"]) + at_level.flush())
    zlib_default = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -15)
    assert expected != len(zlib_default.compress(parts["xl/worksheets/sheet1.xml"]) + zlib_default.flush())
    assert sheet.compress_size == expected


_LOCAL_COMPRESSED_SIZE = 8  # the deflated size's field in zipfile.structFileHeader


def _entries(data: bytes) -> list[tuple]:
    """Each entry's directory fields, then its local header's fields but the deflated size (zipfile checks only the
    local name), then where the entry starts."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        entries = []
        for i in archive.infolist():
            local = struct.unpack(zipfile.structFileHeader,
                                  data[i.header_offset:i.header_offset + zipfile.sizeFileHeader])
            entries.append((i.filename, i.date_time, i.compress_type, i.create_system, i.create_version,
                            i.extract_version, i.external_attr, i.flag_bits, i.file_size, i.CRC,
                            local[:_LOCAL_COMPRESSED_SIZE] + local[_LOCAL_COMPRESSED_SIZE + 1:],
                            i.header_offset))
        return entries


def test_the_entries_are_those_zipfile_writes_for_the_same_names_times_and_permissions():
    """The records are written by hand (zipfile deflates only with zlib): every field a reader sees, non-ASCII names
    (flagged UTF-8) and empty parts included, and every local header field, equals zipfile's own for the same
    ZipInfo; only the deflated bytes differ, so only the offsets after the first entry may."""
    parts = {"[Content_Types].xml": b"<Types/>" * 50, "xl/乡镇.xml": "红旗镇".encode() * 100, "empty.xml": b"",
             "xl/worksheets/sheet1.xml": _worksheet_like(300)}
    when = (2026, 11, 1, 13, 45, 31)  # an odd second: zip times have two-second resolution
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in parts.items():
            info = zipfile.ZipInfo(name, date_time=when)
            info.compress_type, info.external_attr = zipfile.ZIP_DEFLATED, 0o644 << 16
            archive.writestr(info, data)
    ours, theirs = _entries(xlsxml.stable_zip(parts, when)), _entries(buffer.getvalue())
    assert [entry[:-1] for entry in ours] == [entry[:-1] for entry in theirs]
    assert ours[0][-1] == theirs[0][-1] == 0


def test_a_zip_too_large_for_zip32_is_refused_not_written_wrong(monkeypatch):
    monkeypatch.setattr(xlsxml, "_MAX_ZIP32", 1000)
    with pytest.raises(ValueError, match="sheet1.xml: too large"):  # a part's own size: deflated it stays small
        xlsxml.stable_zip({"xl/worksheets/sheet1.xml": b"<row/>" * 1000}, WHEN)
    with pytest.raises(ValueError, match="too many or too large parts"):  # the directory's offset
        xlsxml.stable_zip({f"xl/part{i}.xml": b"<p/>" for i in range(15)}, WHEN)
