//! Databricks Jobs client: run-now, poll runs, per-task results, cancel, repair.
