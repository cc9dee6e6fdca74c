//! The store's metrics, recorded through the `metrics` facade (the process's recorder: scimd
//! serves it at `/metrics`; without one, recording does nothing). docs/metrics.md lists them.
//!
//! Every label comes from a fixed set: the engine (`sqlite`, `postgres`) and the operation, a
//! name of a [`crate::Store`] method written as a literal where the method calls [`timed`].

use std::future::Future;
use std::time::{Duration, Instant};

use crate::{Result, StoreError};

/// Runs one store call, timing it as `operation` of `engine`
/// (`scimd_store_operation_duration_seconds`) and counting it in `scimd_store_errors_total`
/// if the database failed or stored data did not decode. The outcomes a caller asked about
/// (not found, a conflict, a stale version, a refused query) are answers, not errors.
pub(crate) async fn timed<T>(
    engine: &'static str,
    operation: &'static str,
    call: impl Future<Output = Result<T>>,
) -> Result<T> {
    let start = Instant::now();
    let out = call.await;
    let labels = [("engine", engine), ("operation", operation)];
    ::metrics::histogram!("scimd_store_operation_duration_seconds", &labels).record(start.elapsed().as_secs_f64());
    if matches!(out, Err(StoreError::Backend(_) | StoreError::Corrupt(_))) {
        ::metrics::counter!("scimd_store_errors_total", &labels).increment(1);
    }
    out
}

/// Records one group commit of the SQLite writer: how many writes it took and how long its
/// transaction took, from `BEGIN` to `COMMIT` (once per batch, never per write).
pub(crate) fn group_commit(writes: usize, took: Duration) {
    ::metrics::histogram!("scimd_sqlite_commit_batch_size").record(writes as f64);
    ::metrics::histogram!("scimd_sqlite_commit_duration_seconds").record(took.as_secs_f64());
}

/// Records one WAL checkpoint of the SQLite checkpoint thread: how long it took, and the WAL's
/// frames (pages) and those of them in the database file after it.
pub(crate) fn checkpoint(took: Duration, frames: i64, copied: i64) {
    ::metrics::histogram!("scimd_sqlite_checkpoint_duration_seconds").record(took.as_secs_f64());
    ::metrics::gauge!("scimd_sqlite_wal_frames", "state" => "written").set(frames as f64);
    ::metrics::gauge!("scimd_sqlite_wal_frames", "state" => "checkpointed").set(copied as f64);
}

/// Sets the gauge of the writes waiting for the SQLite writer thread.
pub(crate) fn writer_queue(depth: usize) {
    ::metrics::gauge!("scimd_sqlite_writer_queue_depth").set(depth as f64);
}

/// Sets the gauges of the PostgreSQL pool: connections in use and idle, the most it opens, and
/// the calls waiting for a connection.
pub(crate) fn pool(status: deadpool_postgres::Status) {
    let in_use = status.size.saturating_sub(status.available);
    ::metrics::gauge!("scimd_postgres_pool_connections", "state" => "in_use").set(in_use as f64);
    ::metrics::gauge!("scimd_postgres_pool_connections", "state" => "idle").set(status.available as f64);
    ::metrics::gauge!("scimd_postgres_pool_max").set(status.max_size as f64);
    ::metrics::gauge!("scimd_postgres_pool_waiting").set(status.waiting as f64);
}
