"""RAIL's photo-z estimators behind the pipeline's interface (the optional ``[rail]`` extra).

RAIL (LSST DESC's Redshift Assessment Infrastructure Layers) pairs an *informer* stage, which
trains a model from a table of magnitudes and redshifts, with an *estimator* stage, which turns
a table of magnitudes into a ``qp`` ensemble of PDFs.  This adapter runs such a pair in
process, with no files: ``fit`` runs the informer and keeps its model (the object RAIL would
have written to a pickle; it travels to the Dask workers with the fitted adapter), and
``estimate`` builds the estimator stage on the model and converts each partition's ensemble to
the pipeline's columns (``z_phot`` the median, ``z_mode``, ``z_err``, ``odds``, and the PDF as
the quantiles :data:`pipeline.pdf.LEVELS`, whatever parameterization the RAIL stage produced).

The Object catalog's fluxes (nJy) become RAIL's columns ``mag_<band>_lsst`` and
``mag_err_<band>_lsst`` (AB).  A flux that is missing, not positive, or fainter than the band's
limit is a non-detection: RAIL's ``nondetect_val`` (99) in both columns, which RAIL's stages
replace by ``mag_limits``.  Unless the configuration gives them, the limits are the training
set's own 1-sigma depths (its median flux error per band, the softening the other estimators
use) and the redshift grid runs from 0 to RAIL's 3 (or 0.3 beyond the training set's highest
redshift) in steps of 0.01; the quantiles are clipped to the grid.

Install with ``pip install 'pzvo[rail]'`` (pz-rail-base and pz-rail-sklearn) and, for BPZ
template fitting, ``'pzvo[bpz]'``; other RAIL algorithm packages work once installed.  The
default pair is RAIL's ``KNearNeigh``.  Lines a stage prints go to the log, not to stdout.
"""
from __future__ import annotations

import contextlib
import functools
import importlib
import io
import logging
import pkgutil
import threading
import time
from collections.abc import MutableMapping
from importlib import metadata
from typing import Any

import numpy as np

from pipeline.estimators.base import Estimator, Photometry, pdf_columns
from pipeline.pdf import LEVELS
from pipeline.photometry import AB_NJY_ZEROPOINT, BANDS

log = logging.getLogger(__name__)

#: RAIL's marker for a non-detection (its ``nondetect_val`` default).
NONDETECT = 99.0
#: Stage options the adapter sets itself.
RESERVED = frozenset({"name", "output_mode", "hdf5_groupname", "model", "input", "output"})
#: The quantile levels 0 and 1 are the support's ends; RAIL's PDFs may have infinite tails, so
#: the ends are taken at these levels and clipped to the redshift grid.
TAIL = 1e-6
#: RAIL's default upper end of the redshift grid, extended when the training set goes further
#: (by a margin for the PDFs' tails: the quantiles are clipped to the grid).
RAIL_ZMAX = 3.0
ZMAX_MARGIN = 0.3
_POGSON = 2.5 / np.log(10.0)


def _render(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> str:
    """structlog's event as one plain message: the text, then any key=value pairs."""
    text = str(event.pop("event", ""))
    return " ".join([text, *(f"{key}={value}" for key, value in event.items())])


class _PrintsToLog(io.TextIOBase):
    """A stdout that sends each printed line to a logger: some RAIL algorithms print (BPZ's
    "Writing AB file ..."), and the CLI's stdout carries the run's JSON, as do the Dask worker
    processes that inherit it."""

    def __init__(self, logger: logging.Logger, level: int) -> None:
        self.logger, self.level, self.pending = logger, level, ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        *lines, self.pending = (self.pending + text).split("\n")
        for line in lines:
            if line.strip():
                self.logger.log(self.level, line.rstrip())
        return len(text)

    def flush(self) -> None:
        if self.pending.strip():
            self.logger.log(self.level, self.pending.rstrip())
        self.pending = ""


#: ``sys.stdout`` is process-wide: stages of threads of one process take turns while redirected,
#: so RAIL partitions run one at a time per process.  Use process workers (the default
#: ``LocalCluster``, or ``dask worker --nthreads 1``), not threads, for RAIL estimators.
_STDOUT_LOCK = threading.Lock()


@contextlib.contextmanager
def _quiet_stdout(stage_cls: type, level: int) -> Any:
    with _STDOUT_LOCK:
        sink = _PrintsToLog(logging.getLogger(f"rail.{stage_cls.__name__}"), level)
        with contextlib.redirect_stdout(sink):
            yield
        sink.flush()


class RailNotInstalled(RuntimeError):
    """The ``rail`` estimator needs the optional RAIL packages."""


@functools.cache
def rail_class(name: str) -> type:
    """A RAIL stage class from ``module:Class`` or a bare class name found among the installed
    ``rail.estimation.algos`` modules (so ``KNearNeighInformer`` is enough)."""
    try:
        algos = importlib.import_module("rail.estimation.algos")
    except ImportError as exc:
        raise RailNotInstalled("the 'rail' estimator needs RAIL: pip install 'pzvo[rail]'") from exc
    if ":" in name:
        module_name, _, attr = name.partition(":")
        return getattr(importlib.import_module(module_name), attr)
    for info in pkgutil.iter_modules(algos.__path__, algos.__name__ + "."):
        try:
            module = importlib.import_module(info.name)
        except ImportError:  # an algorithm whose own dependencies are missing
            continue
        if isinstance(getattr(module, name, None), type):
            return getattr(module, name)
    raise ValueError(f"no RAIL stage {name!r} among the installed rail.estimation.algos modules")


def _distribution_of(cls: type) -> dict[str, str]:
    """The installed distribution (name and version) that ships a RAIL class, for provenance."""
    top = cls.__module__.replace(".", "/") + ".py"
    for dist in metadata.distributions():
        if any(str(f) == top for f in (dist.files or ())):
            return {dist.metadata["Name"]: dist.version}
    return {}


def rail_magnitudes(phot: Photometry, limits: dict[str, float],
                    nondetect: float = NONDETECT) -> dict[str, np.ndarray]:
    """RAIL's input table: ``mag_<band>_lsst`` and ``mag_err_<band>_lsst`` per band (AB), with
    ``nondetect`` (RAIL's ``nondetect_val``) where the flux is missing, not positive or fainter
    than the limit."""
    table: dict[str, np.ndarray] = {}
    with np.errstate(divide="ignore", invalid="ignore"):
        for j, band in enumerate(BANDS):
            flux = phot.flux[:, j].astype(np.float64)
            mag = AB_NJY_ZEROPOINT - 2.5 * np.log10(flux)
            detected = np.isfinite(mag) & (mag <= limits[f"mag_{band}_lsst"])
            table[f"mag_{band}_lsst"] = np.where(detected, mag, nondetect)
            if phot.flux_err is not None:
                err = _POGSON * phot.flux_err[:, j] / flux
                table[f"mag_err_{band}_lsst"] = np.where(detected & np.isfinite(err), err, nondetect)
    return table


class RailEstimator(Estimator):
    """A RAIL informer/estimator pair (default: RAIL's ``KNearNeigh``), run in process."""

    name = "rail"
    version = "1.0"

    def __init__(self, informer: str = "KNearNeighInformer", estimator: str = "KNearNeighEstimator",
                 config: dict[str, Any] | None = None, **extra: Any) -> None:
        if extra:
            raise TypeError(f"unknown rail parameters: {sorted(extra)} (RAIL stage options go in 'config')")
        config = dict(config or {})
        reserved = sorted(RESERVED & set(config))
        if reserved:
            raise ValueError(f"rail: {reserved} in 'config' are the adapter's to set (stages run in process, "
                             "on in-memory tables, with the fitted model)")
        super().__init__(informer=informer, estimator=estimator, config=config)
        self.informer, self.estimator, self.config = informer, estimator, config
        self.model: Any = None
        self.stage_config: dict[str, Any] = {}

    def _stage(self, cls: type[Any], label: str, level: int = logging.INFO, **kwargs: Any) -> Any:
        """A RAIL stage that returns its outputs instead of writing files, logging through
        :mod:`logging` (logger ``rail.<Stage>``, from ``level`` up) instead of printing to
        stdout as RAIL's structlog default does."""
        import structlog  # noqa: PLC0415 - structlog: RAIL's logger, installed with pzvo[rail]

        stage = cls.make_stage(name=f"pzvo_{label}", output_mode="return", hdf5_groupname="",
                               **self.stage_config, **kwargs)
        stage.log = structlog.wrap_logger(logging.getLogger(f"rail.{cls.__name__}"),
                                          wrapper_class=structlog.make_filtering_bound_logger(level),
                                          processors=[_render])
        return stage

    def fit(self, training: Photometry, redshift: np.ndarray) -> RailEstimator:
        started = time.perf_counter()
        informer_cls, estimator_cls = rail_class(self.informer), rail_class(self.estimator)
        z = np.asarray(redshift, dtype=np.float64)
        depth = AB_NJY_ZEROPOINT - 2.5 * np.log10(training.softening())
        zmax = max(RAIL_ZMAX, float(np.ceil(z.max() * 10.0) / 10.0) + ZMAX_MARGIN if z.size else 0.0)
        limits = {f"mag_{b}_lsst": float(m) for b, m in zip(BANDS, depth, strict=True)}
        cfg = {"zmin": 0.0, "zmax": zmax, "nondetect_val": NONDETECT, **self.config,
               "mag_limits": {**limits, **self.config.get("mag_limits", {})}}
        cfg.setdefault("nzbins", int(round((cfg["zmax"] - cfg["zmin"]) / 0.01)) + 1)
        self.stage_config = cfg
        table = self._table(training)
        table[self.stage_config.get("redshift_col", "redshift")] = z
        informer = self._stage(informer_cls, "inform")
        with _quiet_stdout(informer_cls, logging.INFO):
            informer.inform(table)
        self.model = informer.model
        # One object through the estimator stage now: a bad configuration fails here, once, not
        # in every Dask task, and one-time set-up (BPZ writes its template flux tables on first
        # use) is done before workers share it.
        self.estimate(training.take(slice(0, 1)))
        self.software = {name: metadata.version(name) for name in ("pz-rail-base", "qp-prob")}
        self.software.update({**_distribution_of(informer_cls), **_distribution_of(estimator_cls)})
        log.info("trained estimator", extra={"estimator": self.name, "rail": self.informer, "rows": len(z),
                                             "seconds": round(time.perf_counter() - started, 3)})
        return self

    def _table(self, phot: Photometry) -> dict[str, np.ndarray]:
        return rail_magnitudes(phot, self.stage_config["mag_limits"], self.stage_config["nondetect_val"])

    def describe(self) -> dict[str, Any]:
        """Also the RAIL packages' versions: the same parameters give other PDFs in another RAIL."""
        return {**super().describe(), "software": dict(getattr(self, "software", {}))}

    def estimate(self, objects: Photometry) -> dict[str, np.ndarray]:
        if self.model is None:
            raise RuntimeError("rail: estimate() before fit()")
        if len(objects) == 0:
            return pdf_columns(np.empty((0, LEVELS.size)), np.empty(0))
        # RAIL logs four lines per call: kept for warnings, one partition is one call.
        estimator_cls = rail_class(self.estimator)
        stage = self._stage(estimator_cls, "estimate", logging.WARNING, model=self.model)
        with _quiet_stdout(estimator_cls, logging.INFO):
            ensemble = stage.estimate(self._table(objects)).data
        zmin, zmax = self.stage_config["zmin"], self.stage_config["zmax"]
        # qp squeezes a one-object ensemble's answer to 1-D.
        locs = np.asarray(ensemble.ppf(np.clip(LEVELS, TAIL, 1.0 - TAIL)), dtype=np.float64).reshape(len(objects), -1)
        locs = np.maximum.accumulate(np.clip(np.nan_to_num(locs, nan=zmin), zmin, zmax), axis=1)
        ancil = ensemble.ancil or {}
        if "zmode" in ancil:
            mode = np.asarray(ancil["zmode"], dtype=np.float64).reshape(-1)
        else:
            mode = np.asarray(ensemble.mode(np.linspace(zmin, zmax, self.stage_config["nzbins"])),
                              dtype=np.float64).reshape(-1)
        return pdf_columns(locs, mode)
