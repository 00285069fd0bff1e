"""How replicas seal Raft messages (spurctld.raftcipher): pysyncobj's encryptor interface;
only the secret's holders read or forge a message, and the replay timestamp pysyncobj
reads before decrypting cannot be changed unnoticed."""

from __future__ import annotations

import pytest
from cryptography.exceptions import InvalidTag

from spurctld.raftcipher import VERSION, RaftCipher


@pytest.fixture(scope="module")
def cipher() -> RaftCipher:
    return RaftCipher("the cluster secret")


def test_round_trip_and_timestamp(cipher: RaftCipher) -> None:
    token = cipher.encrypt_at_time(b"append_entries", 1234567)
    assert token[0] == VERSION and b"append_entries" not in token
    assert cipher.extract_timestamp(token) == 1234567
    assert cipher.decrypt(token) == b"append_entries"
    assert RaftCipher("the cluster secret").decrypt(token) == b"append_entries"  # same secret, same key


def test_every_message_has_its_own_nonce(cipher: RaftCipher) -> None:
    tokens = {cipher.encrypt_at_time(b"same", 5) for _ in range(50)}
    assert len(tokens) == 50


def test_another_secret_can_neither_read_nor_forge(cipher: RaftCipher) -> None:
    other = RaftCipher("another secret")
    with pytest.raises(InvalidTag):
        other.decrypt(cipher.encrypt_at_time(b"vote for me", 9))
    with pytest.raises(InvalidTag):
        cipher.decrypt(other.encrypt_at_time(b"vote for me", 9))


@pytest.mark.parametrize("where", ["timestamp", "nonce", "ciphertext", "tag"])
def test_any_change_fails_decryption(cipher: RaftCipher, where: str) -> None:
    token = bytearray(cipher.encrypt_at_time(b"commit index 41", 100))
    index = {"timestamp": 8, "nonce": 12, "ciphertext": 25, "tag": len(token) - 1}[where]
    token[index] ^= 0x01
    with pytest.raises(InvalidTag):
        cipher.decrypt(bytes(token))


@pytest.mark.parametrize("token", [b"", b"\x91short", b"gAAAAAB" + b"x" * 80])  # the last: a Fernet token
def test_what_is_not_our_message_is_refused_before_decrypting(cipher: RaftCipher, token: bytes) -> None:
    with pytest.raises(ValueError):
        cipher.extract_timestamp(token)
    with pytest.raises(ValueError):
        cipher.decrypt(token)
