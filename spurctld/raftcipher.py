"""How replicas seal their Raft messages: pysyncobj's encryptor interface, with AES-GCM-SIV.

pysyncobj seals every message with the encryptor its connections are given
(``encrypt_at_time``, ``extract_timestamp``, ``decrypt``): by default Fernet (AES-CBC, an
HMAC and base64), ~21 us of Python per message sent and received. This one is a single C
call each way (~4 us), with the same guarantees:

- Confidentiality and integrity under a key derived from the cluster's secret file
  (PBKDF2-HMAC-SHA256, 100,000 iterations, as pysyncobj derives its Fernet key): a peer
  without the secret can neither read nor forge a message; a forged or damaged one fails
  ``decrypt`` and pysyncobj drops the connection.
- The timestamp pysyncobj checks for replays (never older than the last one received on
  the connection) is read without decrypting, but it is authenticated: it is the
  associated data of the message, so a changed timestamp fails ``decrypt`` too.
- Nonces are random (96 bits). AES-GCM-SIV stays safe if one ever repeats (only the fact
  that two messages were equal would show), which plain GCM does not.

Layout of a sealed message: ``VERSION`` (1 byte), the timestamp (8 bytes, big-endian),
the nonce (12 bytes), the ciphertext with its 16-byte tag. All replicas of a cluster use
the same layout (Fernet-sealed messages are refused: upgrade every replica together).
"""

from __future__ import annotations

import hashlib
import os
import struct

from cryptography.hazmat.primitives.ciphers.aead import AESGCMSIV

VERSION = 0x91
_HEADER = struct.Struct(">BQ")
_NONCE = 12
_SALT = b"spur raft messages, v1"


class RaftCipher:
    """pysyncobj's encryptor: ``encrypt_at_time``, ``extract_timestamp``, ``decrypt``."""

    def __init__(self, secret: str | bytes) -> None:
        if isinstance(secret, str):
            secret = secret.encode()
        self._aead = AESGCMSIV(hashlib.pbkdf2_hmac("sha256", secret, _SALT, 100_000))

    def encrypt_at_time(self, data: bytes, timestamp: int) -> bytes:
        header = _HEADER.pack(VERSION, timestamp)
        nonce = os.urandom(_NONCE)
        return header + nonce + self._aead.encrypt(nonce, data, header)

    def extract_timestamp(self, token: bytes) -> int:
        """The (not yet verified) timestamp; raises ValueError for what is no message of ours."""
        if len(token) < _HEADER.size + _NONCE + 16 or token[0] != VERSION:
            raise ValueError("not a sealed Raft message")
        return _HEADER.unpack_from(token)[1]

    def decrypt(self, token: bytes) -> bytes:
        """The message; raises (cryptography's InvalidTag) if it was not sealed with our key
        or was changed, its timestamp included."""
        self.extract_timestamp(token)
        start = _HEADER.size + _NONCE
        return self._aead.decrypt(token[_HEADER.size:start], token[start:], token[:_HEADER.size])
