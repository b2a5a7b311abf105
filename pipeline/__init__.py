"""Photo-z estimation: the Dask pipeline (run), its estimators, PDFs (qp quantiles), quality and publishing."""
