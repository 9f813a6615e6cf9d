"""File facts used by the reader, the read cache, the warehouse and the progress lines: a file's content hash,
making a file (or a folder's entries) durable before a rename is trusted, a file name as text, and what an
operating-system error means in a clerk's words."""
from __future__ import annotations

import errno
import hashlib
import os
from pathlib import Path

# What the clerk is told for the operating-system errors met on fangpin's folders and the drop zone, by errno name.
OS_ERROR_WORDS = {
    "EACCES": "没有读写权限，请检查该文件或文件夹的权限",
    "EPERM": "没有读写权限，请检查该文件或文件夹的权限",
    "ENOSPC": "磁盘已满，请清理磁盘空间后重新运行",
    "EDQUOT": "磁盘配额已满，请清理空间后重新运行",
    "EROFS": "磁盘是只读的，无法写入",
    "EEXIST": "已有同名的文件或文件夹，无法在此创建，请移走或改名后重新运行",
    "ENOTDIR": "路径中应为文件夹的一段是一个文件，请移走或改名后重新运行",
    "EISDIR": "应为文件的地方是一个文件夹",
    "ENOENT": "找不到该文件或文件夹",
}


def os_error_words(error: OSError) -> str:
    """The clerk's words for an operating-system error, then Python's ("没有读写权限…（Permission denied）")."""
    words = OS_ERROR_WORDS.get(errno.errorcode.get(error.errno or 0, ""), "操作系统报告读取出错")
    return f"{words}（{error.strerror or error}）"


def fs_text(name: str) -> str:
    """A file name or path as text. A name whose bytes are not UTF-8 (a zip made on Chinese Windows and unpacked
    here, a share mounted without a charset) reaches Python with surrogate escapes that no database or JSON takes;
    each such part of the path is read as GB18030 (GBK's superset), else with "\ufffd" for what neither reads."""
    try:
        name.encode("utf-8")
        return name
    except UnicodeEncodeError:
        return "/".join(_part_text(part) for part in name.split("/"))


def _part_text(part: str) -> str:
    try:
        return part.encode("utf-8").decode("utf-8")
    except UnicodeEncodeError:
        raw = os.fsencode(part)
    try:
        return raw.decode("gb18030")
    except UnicodeDecodeError:
        return raw.decode("utf-8", errors="replace")


def sha256_of(path: Path) -> str:
    """Hex sha256 of the file's bytes, read in 1 MB blocks (a roster file can be hundreds of MB)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fsync(path: Path) -> None:
    """Flush a file, or a folder's entries (after a rename), to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
