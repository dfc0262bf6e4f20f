"""Configuration values read from environment variables, checked against their rules.

Both functions read their configuration once, at start (``RefreshConfig.from_env`` for
``prepare``, :class:`irt.serving.config.PredictConfig` for ``predict``), from a mapping such
as ``os.environ``.  Every rule broken is a :class:`irt.errors.ConfigError` naming the variable,
so a bad deployment fails at start with one clear line instead of at the first request.

Numbers are read strictly, as a person writes them (:func:`parse_int`, :func:`parse_number`):
Python's ``int()`` and ``float()`` also take ``1_000``, `` 12 ``, ``+5`` and non-ASCII digits
(``\u0661\u0662``), none of which a deployment means.

No environment is read here: callers pass the mapping.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

from irt.errors import ConfigError, shown

#: How an integer setting is written (the rule an error quotes).
INTEGER_RULE = "ASCII digits 0-9 only, '-' first for a negative (no space, '_' or leading '+')"
#: How a number setting is written (the rule an error quotes).
NUMBER_RULE = ("ASCII digits 0-9 with an optional '.' and exponent (2.5, 1e-3), '-' first for "
               "a negative (no space, '_' or leading '+')")
_INTEGER = re.compile(r"-?[0-9]+")
# inf and nan pass the syntax so that the caller's range check names them (never in range)
_NUMBER = re.compile(r"-?(?:(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?"
                     r"|(?i:inf|infinity|nan))")


def parse_int(text: str) -> int:
    """``text`` as an integer written in :data:`INTEGER_RULE`'s way: ``"12"``, ``"-3"``,
    ``"007"``; not ``"1_000"``, ``" 12 "``, ``"+5"``, ``"1.0"`` or ``"\u0661\u0662"``.

    Raises:
        ValueError: any other text (the message states the rule).
    """
    if not _INTEGER.fullmatch(text):
        raise ValueError(f"got {shown(text)}: {INTEGER_RULE}")
    try:
        return int(text)
    except ValueError:  # more digits than Python converts (sys.get_int_max_str_digits)
        raise ValueError(f"got {shown(text)}: too long") from None


def parse_number(text: str) -> float:
    """``text`` as a number written in :data:`NUMBER_RULE`'s way: ``"0.5"``, ``"-2"``,
    ``".5"``, ``"1e-3"``; also ``inf`` and ``nan`` (any case), which the caller's range check
    refuses; not ``"1_000"``, ``" 1 "``, ``"+5"`` or ``"\u0661"``.

    Raises:
        ValueError: any other text (the message states the rule).
    """
    if not _NUMBER.fullmatch(text):
        raise ValueError(f"got {shown(text)}: {NUMBER_RULE}")
    return float(text)


def env_int(env: Mapping[str, str], key: str, default: int, lo: int, hi: int) -> int:
    """``env[key]`` as an integer in ``[lo, hi]``; ``default`` when unset or blank.

    Raises:
        ConfigError: not an integer as :func:`parse_int` reads one, or outside ``[lo, hi]``.
    """
    raw = env.get(key, "")
    if raw.strip() == "":
        return default
    try:
        value = parse_int(raw)
    except ValueError as exc:
        raise ConfigError(f"must be an integer, {exc}", key) from None
    if not lo <= value <= hi:
        raise ConfigError(f"must be between {lo} and {hi}, got {shown(raw, False)}", key)
    return value


def env_float(env: Mapping[str, str], key: str, default: float, lo: float, hi: float) -> float:
    """``env[key]`` as a finite number in ``[lo, hi]``; ``default`` when unset or blank.

    Raises:
        ConfigError: not a number as :func:`parse_number` reads one, not finite, or outside
            ``[lo, hi]``.
    """
    raw = env.get(key, "")
    if raw.strip() == "":
        return default
    try:
        value = parse_number(raw)
    except ValueError as exc:
        raise ConfigError(f"must be a number, {exc}", key) from None
    if not (math.isfinite(value) and lo <= value <= hi):
        raise ConfigError(f"must be between {lo} and {hi}, got {shown(raw, False)}", key)
    return value


def env_bool(env: Mapping[str, str], key: str, default: bool) -> bool:
    """``env[key]`` as a boolean (``true``/``false``, ``1``/``0``, ``yes``/``no``, any case);
    ``default`` when unset or blank.

    Raises:
        ConfigError: any other value.
    """
    raw = env.get(key, "").strip().lower()
    if raw == "":
        return default
    if raw in ("true", "1", "yes"):
        return True
    if raw in ("false", "0", "no"):
        return False
    raise ConfigError(f"must be true or false, got {shown(env[key])}", key)
