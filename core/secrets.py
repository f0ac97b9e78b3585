"""Named secrets (master passphrase, repository passwords, client secrets).

The contract is :class:`SecretStore`; the embedded backend keeps one file per
secret with mode 0600 in a directory with mode 0700, and refuses to read a
secret file that group or others can read.  The Vault backend lives in
``core/keys/vault.py`` (the one hvac adapter).
"""

from __future__ import annotations

import abc
import os
import re
import secrets
import stat
from pathlib import Path

from core.errors import InsecureSecretFile, InvalidInput, SecretError, SecretNotFound

_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,99}$")


def check_secret_name(name: str) -> str:
    if not _NAME.match(name):
        raise InvalidInput(f"invalid secret name {name!r}: use lower-case letters, digits, '.', '_' and '-'")
    return name


class SecretStore(abc.ABC):
    @abc.abstractmethod
    def get(self, name: str) -> str:
        """The secret's value; raises SecretNotFound."""

    @abc.abstractmethod
    def put(self, name: str, value: str) -> None:
        """Create or replace a secret."""

    @abc.abstractmethod
    def exists(self, name: str) -> bool: ...

    def ensure_random(self, name: str, nbytes: int = 32) -> str:
        """Return the secret, creating a random URL-safe one first if it does not exist."""
        if not self.exists(name):
            self.put(name, secrets.token_urlsafe(nbytes))
        return self.get(name)

    def reference(self, name: str) -> Path | None:
        """A 0600 file holding the secret, for tools that read passwords from files (restic); None if unsupported."""
        return None


def write_private_file(path: Path, data: bytes) -> None:
    """Atomically write ``data`` to ``path`` with mode 0600 (created that way, never widened)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def read_private_file(path: Path) -> bytes:
    """Read a file that must not be readable by group or others; raises InsecureSecretFile otherwise."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise InsecureSecretFile(
            f"secret file {path.name} has mode {stat.S_IMODE(mode):04o}; it must be 0600 (chmod 600 it)",
            detail_zh=f"机密文件 {path.name} 的权限为 {stat.S_IMODE(mode):04o}，必须为 0600",
        )
    return path.read_bytes()


class FileSecretStore(SecretStore):
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def _path(self, name: str) -> Path:
        return self.directory / check_secret_name(name)

    def get(self, name: str) -> str:
        path = self._path(name)
        try:
            value = read_private_file(path).decode("utf-8")
        except FileNotFoundError:
            raise SecretNotFound(
                f"secret {name!r} is not in the secret store", detail_zh=f"机密 {name!r} 不存在"
            ) from None
        except UnicodeDecodeError as e:
            raise SecretError(f"secret {name!r} is not UTF-8 text") from e
        return value.rstrip("\n")

    def put(self, name: str, value: str) -> None:
        write_private_file(self._path(name), value.encode("utf-8"))

    def exists(self, name: str) -> bool:
        return self._path(name).exists()

    def reference(self, name: str) -> Path | None:
        path = self._path(name)
        if not path.exists():
            raise SecretNotFound(f"secret {name!r} is not in the secret store")
        read_private_file(path)  # mode check
        return path
