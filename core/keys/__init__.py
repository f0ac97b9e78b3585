"""Key custody: the KeyStore contract and its backends.

Everything that signs asks a :class:`KeyStore`; see ``base.py`` for the contract.
Backends: ``file`` (embedded default, ``file.py``), ``pkcs11`` (``pkcs11.py``),
``vault`` (``vault.py``).
"""

from core.keys.base import KeyAlgorithm, KeyInfo, KeyStore, PublicKey, SignatureScheme

__all__ = ["KeyAlgorithm", "KeyInfo", "KeyStore", "PublicKey", "SignatureScheme"]
