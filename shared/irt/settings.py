"""Configuration values read from environment variables, checked against their rules.

Both functions read their configuration once, at start (``RefreshConfig.from_env`` for
``prepare``, :class:`irt.serving.config.PredictConfig` for ``predict``), from a mapping such
as ``os.environ``.  Every rule broken is a :class:`irt.errors.ConfigError` naming the variable,
so a bad deployment fails at start with one clear line instead of at the first request.

No environment is read here: callers pass the mapping.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from irt.errors import ConfigError


def env_int(env: Mapping[str, str], key: str, default: int, lo: int, hi: int) -> int:
    """``env[key]`` as an integer in ``[lo, hi]``; ``default`` when unset or blank.

    Raises:
        ConfigError: not an integer, or outside ``[lo, hi]``.
    """
    raw = env.get(key, "")
    if raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"must be an integer, got {raw!r}", key) from None
    if not lo <= value <= hi:
        raise ConfigError(f"must be between {lo} and {hi}, got {value}", key)
    return value


def env_float(env: Mapping[str, str], key: str, default: float, lo: float, hi: float) -> float:
    """``env[key]`` as a finite number in ``[lo, hi]``; ``default`` when unset or blank.

    Raises:
        ConfigError: not a number, not finite, or outside ``[lo, hi]``.
    """
    raw = env.get(key, "")
    if raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"must be a number, got {raw!r}", key) from None
    if not (math.isfinite(value) and lo <= value <= hi):
        raise ConfigError(f"must be between {lo} and {hi}, got {raw}", key)
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
    raise ConfigError(f"must be true or false, got {env[key]!r}", key)
