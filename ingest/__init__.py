"""Loading tables into PostgreSQL and publishing them: bulk COPY, demo and benchmark data."""
