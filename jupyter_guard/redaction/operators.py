"""Redaction operators, the Presidio way (``presidio_anonymizer.operators.Operator``).

Each operator is a thin Presidio wrapper around a pure function that the column path calls
once per *distinct* value (see frame.py), so a whole column costs one call per distinct value.

* ``guard_mask``: every letter and digit becomes ``*``; separators and length stay, so the
  value keeps its shape. For identifiers where showing the last four digits is the common
  convention (SSN, card, IBAN, bank account, phone, ITIN) those stay visible when the value
  has at least eight digits: ``123-45-6789`` -> ``***-**-6789``.
* ``pseudonymize``: keyed, salted pseudonym ``PSN_`` + 16 hex digits of
  HMAC-SHA256(key, value). Same key and value give the same pseudonym in every process, so
  joins still work; without a key nothing is hashed (KeyRequired), never an unkeyed hash.
* ``hybrid_encrypt``: AES-256-GCM per value under a random data key made once per
  ``redact_frame`` call; the data key is wrapped with RSA-OAEP(SHA-256) under the stewards'
  public key. Tokens read ``ENC1.<key-id>.<base64url(nonce|ciphertext|tag)>``; the wrapped
  key goes into the report (``wrapped_keys``). The kernel can encrypt but never decrypt;
  stewards call :func:`decrypt_token` with their private key.
"""

from __future__ import annotations

import base64
import hmac
import os
import re
import secrets
import string

from presidio_anonymizer.operators import Operator, OperatorType

from .model import KeyRequired, RedactionError

MIN_KEY_BYTES = 16
PSEUDONYM_PREFIX = "PSN_"
PSEUDONYM_HEX = 16  # 64 bits: P(any collision among 1e6 values) ~ 3e-8
TOKEN_VERSION = "ENC1"

#: entities whose last four digits stay visible when masked
KEEP_LAST_DIGITS = {"US_SSN": 4, "CREDIT_CARD": 4, "IBAN_CODE": 4, "US_BANK_NUMBER": 4, "PHONE_NUMBER": 4,
                    "US_ITIN": 4}

_ASCII_MASK = str.maketrans({c: "*" for c in string.ascii_letters + string.digits})
_ALNUM = re.compile(r"[^\W_]")
_DROP_DIGITS = str.maketrans("", "", string.digits)


# -- pure functions --------------------------------------------------------------------------


def mask_value(value: str, keep_last_digits: int = 0) -> str:
    """Letters and digits -> ``*``; punctuation, spaces and length kept. With
    ``keep_last_digits=n`` the last n digits stay when the value has at least 2n digits."""
    if value.isascii():
        masked = value.translate(_ASCII_MASK)
        if not keep_last_digits:
            return masked
        tail = value[-keep_last_digits:]
        if tail.isdigit():  # fast path: "123-45-6789", "4111 1111 1111 1111"
            if len(value) - len(value.translate(_DROP_DIGITS)) >= 2 * keep_last_digits:
                return masked[:-keep_last_digits] + tail
            return masked
    else:
        masked = _ALNUM.sub("*", value)
        if not keep_last_digits:
            return masked
    positions = [i for i, c in enumerate(value) if c.isdigit()]
    if len(positions) >= 2 * keep_last_digits:
        chars = list(masked)
        for i in positions[-keep_last_digits:]:
            chars[i] = value[i]
        masked = "".join(chars)
    return masked


def check_key(key: bytes | None, what: str = "pseudonym key") -> bytes:
    if key is None:
        raise KeyRequired(f"rule 'hash' needs a {what}; none was configured, and jupyter_guard never makes an "
                          "unkeyed hash (it would be reversible by guessing)")
    if not isinstance(key, (bytes, bytearray)) or len(key) < MIN_KEY_BYTES:
        raise RedactionError(f"the {what} must be at least {MIN_KEY_BYTES} bytes")
    return bytes(key)


def pseudonym(value: str, key: bytes) -> str:
    """``PSN_`` + 16 hex digits of HMAC-SHA256(key, UTF-8 value)."""
    return PSEUDONYM_PREFIX + hmac.digest(key, value.encode("utf-8"), "sha256").hex()[:PSEUDONYM_HEX]


def generate_pseudonym_key() -> bytes:
    """A new random 32-byte pseudonym key (keep it in the server's secret provider)."""
    return secrets.token_bytes(32)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def load_public_key(public_key_pem: bytes | str):
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    if isinstance(public_key_pem, str):
        public_key_pem = public_key_pem.encode("ascii")
    try:
        key = load_pem_public_key(public_key_pem)
    except ValueError as e:
        raise RedactionError(f"the stewards' public key is not a PEM public key: {e}") from None
    if not isinstance(key, RSAPublicKey) or key.key_size < 2048:
        raise RedactionError("the stewards' public key must be an RSA key of at least 2048 bits")
    return key


class HybridEncryptor:
    """One data key per instance (the caller makes one per ``redact_frame`` call)."""

    def __init__(self, public_key_pem: bytes | str | None):
        if public_key_pem is None:
            raise KeyRequired("rule 'encrypt' needs the stewards' public key; none was configured")
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        public_key = load_public_key(public_key_pem)
        data_key = AESGCM.generate_key(bit_length=256)
        self._aes = AESGCM(data_key)
        self.key_id = secrets.token_hex(6)
        wrapped = public_key.encrypt(
            data_key, padding.OAEP(mgf=padding.MGF1(algorithm=hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
        )
        self.wrapped_key = base64.b64encode(wrapped).decode("ascii")
        self._prefix = f"{TOKEN_VERSION}.{self.key_id}."
        self._aad = self._prefix.encode("ascii")

    def encrypt(self, value: str) -> str:
        nonce = os.urandom(12)
        return self._prefix + _b64(nonce + self._aes.encrypt(nonce, value.encode("utf-8"), self._aad))


def decrypt_token(token: str, wrapped_key: str | bytes, private_key_pem: bytes | str, password: bytes | None = None) -> str:
    """For stewards: the original value of an ``ENC1.<key-id>.<data>`` token, given the
    wrapped key recorded for that key id and the stewards' RSA private key."""
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    parts = token.split(".")
    if len(parts) != 3 or parts[0] != TOKEN_VERSION:
        raise RedactionError("not an ENC1 token")
    if isinstance(private_key_pem, str):
        private_key_pem = private_key_pem.encode("ascii")
    private_key = load_pem_private_key(private_key_pem, password=password)
    wrapped = base64.b64decode(wrapped_key)
    try:
        data_key = private_key.decrypt(
            wrapped, padding.OAEP(mgf=padding.MGF1(algorithm=hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
        )
        blob = _unb64(parts[2])
        aad = f"{parts[0]}.{parts[1]}.".encode("ascii")
        return AESGCM(data_key).decrypt(blob[:12], blob[12:], aad).decode("utf-8")
    except (ValueError, InvalidTag):
        raise RedactionError("cannot decrypt: wrong private key, wrong wrapped key for this key id, "
                             "or the token was altered") from None


# -- Presidio operators ----------------------------------------------------------------------


class GuardMask(Operator):
    """``guard_mask``: params ``entity_type`` (picks the keep-last-digits convention)."""

    def operate(self, text: str | None = None, params: dict | None = None) -> str:
        return self.value_function(params)(text)

    def value_function(self, params: dict | None = None):
        """The per-value function ``operate`` applies (the column path calls it per distinct value)."""
        keep = KEEP_LAST_DIGITS.get((params or {}).get("entity_type"), 0)
        return lambda text: mask_value(text, keep)

    def validate(self, params: dict | None = None) -> None:
        pass

    def operator_name(self) -> str:
        return "guard_mask"

    def operator_type(self) -> OperatorType:
        return OperatorType.Anonymize


class Pseudonymize(Operator):
    """``pseudonymize``: params ``key`` (bytes, at least 16)."""

    def operate(self, text: str | None = None, params: dict | None = None) -> str:
        return pseudonym(text, params["key"])

    def value_function(self, params: dict | None = None):
        key = params["key"]
        digest = hmac.digest
        return lambda text: PSEUDONYM_PREFIX + digest(key, text.encode("utf-8"), "sha256").hex()[:PSEUDONYM_HEX]

    def validate(self, params: dict | None = None) -> None:
        check_key((params or {}).get("key"))

    def operator_name(self) -> str:
        return "pseudonymize"

    def operator_type(self) -> OperatorType:
        return OperatorType.Anonymize


class HybridEncrypt(Operator):
    """``hybrid_encrypt``: params ``encryptor`` (a :class:`HybridEncryptor`)."""

    def operate(self, text: str | None = None, params: dict | None = None) -> str:
        return params["encryptor"].encrypt(text)

    def value_function(self, params: dict | None = None):
        return params["encryptor"].encrypt

    def validate(self, params: dict | None = None) -> None:
        if not isinstance((params or {}).get("encryptor"), HybridEncryptor):
            raise KeyRequired("rule 'encrypt' needs the stewards' public key; none was configured")

    def operator_name(self) -> str:
        return "hybrid_encrypt"

    def operator_type(self) -> OperatorType:
        return OperatorType.Anonymize


OPERATORS = (GuardMask, Pseudonymize, HybridEncrypt)
