"""Split a matched spec-z catalog into a training set and a validation set.

Random (``fraction`` of the rows to training, exactly ``round(fraction * n)``, drawn with
``seed``), optionally stratified in redshift (equal-count bins; each bin split with the same
fraction, so both sets keep the catalog's n(z)), or science-driven through a hook.

A hook is a function ``hook(table, *, fraction, rng, **params)`` named ``package.module:function``.
It returns either a boolean mask (True: training) or a pair ``(training, validation)`` of Arrow
tables, which may add columns (weights) or rows (augmentation).  The shipped example is
:func:`pipeline.tsm.hooks.faint_validation`.
"""
from __future__ import annotations

import importlib
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

SplitHook = Callable[..., Any]


class SplitError(ValueError):
    """A split that cannot run: bad parameters, a hook that cannot be loaded or misbehaves."""


@dataclass
class SplitResult:
    training: pa.Table
    validation: pa.Table
    report: dict[str, Any] = field(default_factory=dict)


def load_hook(name: str) -> SplitHook:
    """``package.module:function`` -> the function."""
    module_name, _, attribute = name.partition(":")
    if not module_name or not attribute:
        raise SplitError(f"split hook {name!r} must be written package.module:function")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise SplitError(f"split hook {name!r}: cannot import {module_name} ({exc})") from exc
    hook = getattr(module, attribute, None)
    if not callable(hook):
        raise SplitError(f"split hook {name!r}: {module_name} has no function {attribute}")
    return hook


def check_split(fraction: float, stratify: int | bool | None) -> int:
    """Number of redshift bins to stratify in (0: none), after checking the parameters."""
    if not (isinstance(fraction, int | float) and not isinstance(fraction, bool) and 0 < fraction < 1):
        raise SplitError(f"split fraction must be a number between 0 and 1 (exclusive), not {fraction!r}")
    if stratify is None or stratify is False:
        return 0
    if stratify is True:
        return 10
    if isinstance(stratify, int) and stratify >= 2:
        return stratify
    raise SplitError(f"split stratify must be true, false or a number of redshift bins >= 2, not {stratify!r}")


def random_mask(z: np.ndarray, fraction: float, rng: np.random.Generator, bins: int = 0) -> np.ndarray:
    """Training mask: exactly ``round(fraction * n)`` rows in each stratum (the whole set, or
    each of ``bins`` equal-count redshift bins)."""
    n = len(z)
    mask = np.zeros(n, dtype=bool)
    if bins and n:
        order = np.argsort(z, kind="stable")
        strata = np.array_split(order, min(bins, n))
    else:
        strata = [np.arange(n)]
    for rows in strata:
        take = math.floor(fraction * len(rows) + 0.5)
        mask[rows[rng.permutation(len(rows))[:take]]] = True
    return mask


def split(table: pa.Table, *, fraction: float = 0.7, seed: int = 0, stratify: int | bool | None = None,
          z_column: str = "z", hook: str | SplitHook | None = None,
          hook_params: Mapping[str, Any] | None = None) -> SplitResult:
    """Training and validation tables from ``table``; the report carries every parameter."""
    bins = check_split(fraction, stratify)
    if z_column not in table.column_names:
        raise SplitError(f"no redshift column {z_column!r} to split on")
    rng = np.random.default_rng(seed)
    report: dict[str, Any] = {"fraction": fraction, "seed": seed, "stratify_bins": bins, "rows": table.num_rows,
                              "hook": None, "hook_params": dict(hook_params or {})}
    if hook is not None:
        function = load_hook(hook) if isinstance(hook, str) else hook
        report["hook"] = hook if isinstance(hook, str) else f"{function.__module__}:{function.__qualname__}"
        try:
            answer = function(table, fraction=fraction, rng=rng, **(hook_params or {}))
        except SplitError:
            raise
        except Exception as exc:
            raise SplitError(f"split hook {report['hook']} failed: {type(exc).__name__}: {exc}") from exc
        if isinstance(answer, tuple) and len(answer) == 2 and all(isinstance(t, pa.Table) for t in answer):
            training, validation = answer
        else:
            mask = np.asarray(answer)
            if mask.dtype != bool or mask.shape != (table.num_rows,):
                raise SplitError(f"split hook {report['hook']} must return a boolean mask of {table.num_rows} rows "
                                 "or a (training, validation) pair of Arrow tables")
            training, validation = table.filter(pa.array(mask)), table.filter(pa.array(~mask))
    else:
        z = np.asarray(table.column(z_column).to_numpy(zero_copy_only=False), dtype=np.float64)
        mask = random_mask(z, fraction, rng, bins)
        training, validation = table.filter(pa.array(mask)), table.filter(pa.array(~mask))
    report["training"] = training.num_rows
    report["validation"] = validation.num_rows
    return SplitResult(training=training, validation=validation, report=report)
