"""Photo-z estimation: estimators, LSST photometry model, and (later) the Dask pipeline."""
