"""Encryption of secrets at rest (Fernet: AES-128-CBC + HMAC-SHA256, from `cryptography`)."""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken

from bridge.errors import SecretKeyError


def generate_key() -> str:
    """A fresh key for BRIDGE_SECRET_KEY."""
    return Fernet.generate_key().decode("ascii")


class SecretBox:
    """Encrypts and decrypts short secrets with the key from BRIDGE_SECRET_KEY.

    Built without a key it can still be asked `available`, so that code which finds no
    stored secrets runs without one; any encrypt or decrypt then fails with a clear error.
    """

    def __init__(self, key: str | None) -> None:
        self._fernet: Fernet | None = None
        if key:
            try:
                self._fernet = Fernet(key.encode("ascii"))
            except (ValueError, UnicodeEncodeError) as exc:
                raise SecretKeyError(
                    "BRIDGE_SECRET_KEY is not a valid key; make one with `zoho-bridge keygen`"
                ) from exc

    @property
    def available(self) -> bool:
        return self._fernet is not None

    def _require(self) -> Fernet:
        if self._fernet is None:
            raise SecretKeyError(
                "BRIDGE_SECRET_KEY is not set; it is needed to store or read secrets "
                "(make one with `zoho-bridge keygen`)"
            )
        return self._fernet

    def encrypt(self, plaintext: str) -> str:
        return self._require().encrypt(plaintext.encode("utf-8")).decode("ascii")

    def decrypt(self, ciphertext: str) -> str:
        try:
            return self._require().decrypt(ciphertext.encode("ascii")).decode("utf-8")
        except InvalidToken as exc:
            raise SecretKeyError(
                "BRIDGE_SECRET_KEY cannot decrypt the stored secrets (wrong or rotated key?)"
            ) from exc
