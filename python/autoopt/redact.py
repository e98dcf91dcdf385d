"""Secrets never reach a terminal or a log: one place that scrubs them from text and settings.

Why: NATS URLs carry user info (``nats://user:pass@host``, ``nats://token@host``), settings hold
passwords, tokens and nkey seeds, and any of them can end up in an error message, a log line or
``autoopt config``. Everything that builds such text passes it through `redact` (free text) or
`mask_settings` (a settings tree) first, so there is one rule for what counts as a secret.
"""

from __future__ import annotations

import re
from typing import Any

MASK = "***"

# scheme://userinfo@  (userinfo = anything up to the first @ that is not a / or whitespace)
_URL_USERINFO = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<info>[^/@\s'\"]+)@")
# NATS nkey seeds: 'S' + a key-type letter + base32 (58 chars in all); user seeds start "SU".
_NKEY_SEED = re.compile(r"\bS[ABCNOPUVX][A-Z2-7]{40,}\b")
# ``-----BEGIN ... PRIVATE KEY----- ... -----END`` blocks, JWTs of .creds files included.
_PEM_BLOCK = re.compile(r"-----BEGIN [A-Z0-9 ]+-----.*?(-----END [A-Z0-9 ]+-----|\Z)", re.S)
_SECRET_KEY_NAME = re.compile(
    r"(password|passwd|passphrase|token|secret|nkeys?_seed|api_?key|private_?key|credentials?)$",
    re.IGNORECASE,
)


def _userinfo(match: re.Match[str]) -> str:
    info = match.group("info")
    user = info.split(":", 1)[0] if ":" in info else ""
    # user:pass keeps the user name (useful, not secret); a bare token is all secret
    return f"{match.group('scheme')}{user + ':' if user else ''}{MASK}@"


def redact(text: str) -> str:
    """``text`` with URL passwords/tokens, nkey seeds and PEM blocks replaced by ``***``."""
    text = _URL_USERINFO.sub(_userinfo, text)
    text = _NKEY_SEED.sub(MASK, text)
    return _PEM_BLOCK.sub(MASK, text)


def is_secret_name(name: str) -> bool:
    """True when a setting's name says it holds a secret (password, token, secret, nkeys_seed...;
    not an RNG seed such as ``pipeline.seed``)."""
    return bool(_SECRET_KEY_NAME.search(name))


def mask_settings(tree: Any, *, name: str = "") -> Any:
    """A copy of a settings tree (dicts, lists, scalars) with secrets masked: values of secret-named
    keys become ``***`` (None stays None, so "unset" still shows) and every string is `redact`ed."""
    if isinstance(tree, dict):
        return {k: mask_settings(v, name=str(k)) for k, v in tree.items()}
    if isinstance(tree, list):
        return [mask_settings(v, name=name) for v in tree]
    if tree is not None and name and is_secret_name(name):
        return MASK
    if isinstance(tree, str):
        return redact(tree)
    return tree


__all__ = ["MASK", "is_secret_name", "mask_settings", "redact"]
