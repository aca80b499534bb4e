"""`make bench`: measured cost of jitr (separate from `make test`; no timed assertions anywhere)."""
