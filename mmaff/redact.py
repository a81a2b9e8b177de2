"""Secrets out of everything that is recorded: command lines, configs, free text (logs, errors, model cards).

Secrets are found by NAME, not by guessing at values: a flag, mapping key or ``KEY=value`` whose name contains
``token``, ``key``, ``secret``, ``password`` / ``passwd``, ``credential`` or ``authorization`` (case-insensitive;
``-`` and ``_`` alike) has its value replaced by `REDACTED`. Names that only count or point at tokens are not
secrets: ``max_new_tokens``, ``tokenizer_name``, ``pad_token_id``, ``eos_token`` (so a plural ``api_tokens`` is
missed: name secrets in the singular). A name ending in
``env`` (``--api-key-env OPENAI_API_KEY``) names an environment variable: its value is kept when it looks like a
variable name (``[A-Za-z_][A-Za-z0-9_]*``) and redacted otherwise (a key pasted in by mistake).

Also redacted wherever they occur: the userinfo of URLs (``https://user:pass@host`` -> ``https://<redacted>@host``),
``Bearer``/``Basic`` credentials, and any literal secret value the caller knows (an API key, a hub token) of at
least `MIN_SECRET_LENGTH` characters. The marker is fixed, so redacted records stay deterministic.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

REDACTED = "<redacted>"
MIN_SECRET_LENGTH = 4  # shorter literal values are not searched for in free text (they would hit everywhere)

_SECRET_WORD = re.compile(r"token|key|secret|passw(?:or)?d|credential|authorization", re.IGNORECASE)
_NOT_SECRET = re.compile(
    r"tokens|tokeniz|token_ids?$|token_type|^(?:pad|eos|bos|unk|sep|cls|mask|image|video|vision)_token",
    re.IGNORECASE,
)
_ENV_VAR_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_URL_USERINFO = re.compile(r"(?<=://)[^/?#@\s]+@")
_AUTH_SCHEME = re.compile(r"\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]+", re.IGNORECASE)
# `name: value` / `name=value` in free text, YAML or JSON; the name optionally quoted
_KEY_VALUE = re.compile(
    r"""(?P<name>["']?[A-Za-z_][\w.-]*["']?)(?P<sep>[ \t]*[:=][ \t]*)(?P<value>"[^"\n]*"|'[^'\n]*'|[^\s,;&}\]]*[^\s,;&}\].])"""
)


def is_secret_name(name: str) -> bool:
    """Whether a flag / key / variable name holds a secret (``--hub_token``, ``api-key``, ``HF_TOKEN``)."""
    normal = name.strip().strip("\"'").lstrip("-").replace("-", "_")
    return bool(_SECRET_WORD.search(normal)) and not _NOT_SECRET.search(normal)


def _names_a_variable(name: str, value: Any) -> bool:
    normal = name.strip().strip("\"'").lstrip("-").replace("-", "_").lower()
    return normal.endswith("env") and isinstance(value, str) and bool(_ENV_VAR_NAME.fullmatch(value))


def _hides(name: str, value: Any) -> bool:
    return is_secret_name(name) and not _names_a_variable(name, value)


def redact_url(url: str) -> str:
    """The URL without its userinfo (``user:password@``)."""
    return _URL_USERINFO.sub(REDACTED + "@", url)


def redact_text(text: str, secrets: Iterable[str | None] = ()) -> str:
    """Free text with the known `secrets`, URL userinfo, auth-header credentials and ``secret_name: value`` /
    ``secret_name=value`` pairs redacted."""
    for secret in sorted({s for s in secrets if s and len(s) >= MIN_SECRET_LENGTH}, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    text = redact_url(text)
    text = _AUTH_SCHEME.sub(lambda m: f"{m.group(1)} {REDACTED}", text)

    def pair(match: re.Match[str]) -> str:
        name, value = match.group("name"), match.group("value").strip("\"'")
        if not _hides(name, value) or value.lower() in ("", REDACTED, "null", "none", "~", "bearer", "basic"):
            return match.group(0)
        return f"{name}{match.group('sep')}{REDACTED}"

    return _KEY_VALUE.sub(pair, text)


def redact_command(argv: Sequence[str], secrets: Iterable[str | None] = ()) -> list[str]:
    """A command line with the values of secret flags (``--flag value``, ``--flag=value``), ``KEY=value``
    assignments, URL userinfo and the known `secrets` redacted."""
    secrets = list(secrets)
    redacted: list[str] = []
    hide_next = False
    for arg in map(str, argv):
        if hide_next and not arg.startswith("--"):
            redacted.append(arg if _names_a_variable(redacted[-1], arg) else REDACTED)
            hide_next = False
            continue
        hide_next = False
        name, equals, value = arg.partition("=")
        if equals and _hides(name, value) and (arg.startswith("-") or _ENV_VAR_NAME.fullmatch(name)):
            redacted.append(f"{name}={REDACTED}")
            continue
        hide_next = arg.startswith("-") and not equals and is_secret_name(arg)
        redacted.append(redact_text(arg, secrets) if not hide_next else arg)
    return redacted


def redact_config(config: Any, secrets: Iterable[str | None] = ()) -> Any:
    """A copy of a parsed config (mappings and lists at any depth) with the values of secret keys redacted (None
    and empty values kept: they say that no secret was given) and the strings elsewhere redacted as text."""
    secrets = list(secrets)
    if isinstance(config, dict):
        return {
            key: REDACTED if _hides(str(key), value) and value not in (None, "") else redact_config(value, secrets)
            for key, value in config.items()
        }
    if isinstance(config, (list, tuple)):
        return [redact_config(item, secrets) for item in config]
    return redact_text(config, secrets) if isinstance(config, str) else config


def secret_values(config: Any) -> list[str]:
    """The values held under secret keys anywhere in a parsed config (to be searched for in its raw text)."""
    found: list[str] = []
    if isinstance(config, dict):
        for key, value in config.items():
            if _hides(str(key), value) and isinstance(value, (str, int, float)) and not isinstance(value, bool):
                found.append(str(value))
            else:
                found.extend(secret_values(value))
    elif isinstance(config, (list, tuple)):
        for item in config:
            found.extend(secret_values(item))
    return found


def redact_yaml_text(text: str, secrets: Iterable[str | None] = ()) -> str:
    """A YAML (or JSON) document's text, comments and layout kept, with every value under a secret key redacted
    (block or flow style, any depth) as well as the known `secrets`."""
    import yaml

    try:
        found = secret_values(yaml.safe_load(text))
    except yaml.YAMLError:
        found = []
    return redact_text(text, [*secrets, *found])
