"""Township workbook protection (乡镇工作簿加密): real file encryption with a password per township, and owner-only
permissions on everything written under exports/.

Why real encryption: a township workbook carries full ID numbers of its warned household heads, and workbooks travel
by e-mail, WeChat and USB sticks. Excel's "protect sheet" is no protection; an ECMA-376 agile-encrypted file
(AES-256, what Excel's "Encrypt with Password" writes, here via msoffcrypto-tool) cannot be opened without the
password. Excel and WPS open it after asking for the password, and keep it encrypted when the township saves it.

Passwords come from a YAML or JSON file {township: password} named by FANGPIN_WORKBOOK_PASSWORDS_FILE, kept outside
the project and the data dir, readable by its owner only. No variable, no encryption (logged by the asset, written
in audit.exports). When passwords are configured, a workbook is never left on disk unencrypted: one whose township
has no password is deleted and the run fails naming the township.
"""
from __future__ import annotations

import io
import os
from pathlib import Path

import msoffcrypto
from msoffcrypto.format.ooxml import OOXMLFile

from fangpin.config import read_yaml
from fangpin.snapshot import SecretError, check_outside, check_private

PASSWORDS_ENV = "FANGPIN_WORKBOOK_PASSWORDS_FILE"


class MissingWorkbookPasswords(RuntimeError):
    """Some townships have no password: their workbooks were deleted, the others encrypted (`encrypted`)."""

    def __init__(self, townships: list[str], encrypted: dict[Path, bool], removed: list[Path]):
        self.townships, self.encrypted, self.removed = townships, encrypted, removed
        names = "、".join(townships)
        super().__init__(
            f"工作簿密码文件（{PASSWORDS_ENV}）中没有乡镇 {names} 的密码，这些乡镇的工作簿没有生成（不留未加密的文件）；"
            f"请在密码文件中补上后重新运行本月。 No workbook password for {names}: their workbooks were removed.")


def passwords_file() -> Path | None:
    value = os.environ.get(PASSWORDS_ENV, "").strip()
    return Path(value).expanduser().resolve() if value else None


def load_passwords(data_dir: Path | None = None) -> dict[str, str] | None:
    """{township: password} from the passwords file, or None when encryption is not configured.

    A configured but missing, unsafe (inside project or data dir, readable by others) or malformed file is an
    error, never a silent fall-back to unencrypted workbooks.
    """
    path = passwords_file()
    if path is None:
        return None
    what = "工作簿密码文件 workbook passwords file"
    if not path.exists():
        raise SecretError(f"{what} {path}（{PASSWORDS_ENV}）不存在。 The passwords file does not exist.")
    check_outside(path, data_dir, what)
    check_private(path, what)
    content = read_yaml(path) or {}
    if not isinstance(content, dict):
        raise SecretError(f"{what} {path} 应为“乡镇: 密码”的对应表（YAML 或 JSON）。 Expected {{township: password}}.")
    return {str(township).strip(): str(password) for township, password in content.items()
            if password is not None and str(password) != ""}


def workbook_township(path: Path | io.BytesIO) -> str:
    """The township a workbook (path or decrypted bytes) was written for, from its hidden meta sheet (the file name
    may be cleaned)."""
    from fangpin.feedback import workbook_meta

    return workbook_meta(path)["township"]


def is_encrypted(path: Path) -> bool:
    with open(path, "rb") as handle:
        return msoffcrypto.OfficeFile(handle).is_encrypted()


def _write_private(path: Path, data: bytes) -> None:
    """Write `data` to `path` via a temporary owner-only file and an atomic rename."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    os.chmod(path, 0o600)


def encrypt_workbook(path: Path, password: str) -> Path:
    """Encrypt one xlsx in place (ECMA-376 agile, AES-256); the file stays 0600. Already encrypted: unchanged."""
    path = Path(path)
    if is_encrypted(path):
        return path
    buffer = io.BytesIO()
    with open(path, "rb") as handle:
        OOXMLFile(handle).encrypt(password, buffer)
    _write_private(path, buffer.getvalue())
    return path


def open_returned(path: Path, passwords: dict[str, str] | None) -> io.BytesIO | None:
    """A returned workbook's plain bytes when it is encrypted with one of the townships' passwords, else None
    (a plain workbook is read from its file; an encrypted one no password opens is reported unreadable)."""
    if not passwords:
        return None
    try:
        encrypted = is_encrypted(path)
    except Exception:  # noqa: BLE001 - no Office file at all (empty, damaged, a CSV): the reader rejects it as such
        return None
    if not encrypted:
        return None
    for password in passwords.values():  # a handful of townships: try each
        try:
            return decrypt_workbook(path, password)
        except Exception:  # noqa: BLE001 - wrong password: try the next
            continue
    return None


def decrypt_workbook(path: Path, password: str) -> io.BytesIO:
    """The plain xlsx bytes of an encrypted workbook (for feedback.open_workbook); wrong password: InvalidKeyError."""
    output = io.BytesIO()
    with open(path, "rb") as handle:
        office = msoffcrypto.OfficeFile(handle)
        office.load_key(password=password)
        office.decrypt(output)
    output.seek(0)
    return output


def encrypt_workbooks(paths: list[Path], passwords: dict[str, str] | None = None,
                      townships: dict[Path, str] | None = None, data_dir: Path | None = None) -> dict[Path, bool]:
    """Encrypt each township workbook with its township's password; {path: encrypted}.

    `passwords` defaults to `load_passwords(data_dir)`; with none configured nothing is encrypted (all False).
    `townships` ({path: township}) defaults to each workbook's meta sheet. A workbook whose township has no
    password is deleted, and MissingWorkbookPasswords is raised after all the others are encrypted.
    """
    paths = [Path(p) for p in paths]
    passwords = load_passwords(data_dir) if passwords is None else passwords
    if passwords is None:
        return {path: False for path in paths}
    townships = townships or {path: workbook_township(path) for path in paths}
    encrypted: dict[Path, bool] = {}
    missing, removed = [], []
    for path in paths:  # per-file loop: one workbook per township
        township = townships[path]
        if township in passwords:
            encrypt_workbook(path, passwords[township])
            encrypted[path] = True
        else:
            path.unlink(missing_ok=True)
            missing.append(township)
            removed.append(path)
    if missing:
        raise MissingWorkbookPasswords(missing, encrypted, removed)
    return encrypted


def restrict_exports(folder: Path, root: Path | None = None) -> None:
    """Owner-only exports: `root` (the exports/ directory) and `folder` (its month) created if needed and 0700,
    every file in `folder` 0600. Called before writing too, so a plaintext file is never readable by others even
    for the moment between its writing and its encryption."""
    for directory in (root, folder):
        if directory is not None:
            Path(directory).mkdir(parents=True, exist_ok=True)
            os.chmod(directory, 0o700)
    for path in Path(folder).iterdir():
        if path.is_file():
            os.chmod(path, 0o600)
