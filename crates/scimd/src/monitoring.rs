//! The process's Prometheus recorder, served at `/metrics` on the admin listener.
//!
//! docs/metrics.md lists every metric, its labels and why each label set is bounded;
//! `deploy/grafana-dashboard.json` charts them. Histograms are exported as Prometheus
//! histograms (`_bucket`, `_sum`, `_count`), so that quantiles can be taken over any range and
//! summed over replicas (`histogram_quantile`), with the buckets below.

use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder, PrometheusHandle};

/// The buckets of every duration histogram (`*_seconds`): 250 µs to 30 s.
pub const SECONDS_BUCKETS: &[f64] =
    &[0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// The buckets of `scimd_sqlite_commit_batch_size`: 1 to the writer's most (512) writes.
pub const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0];

/// The recorder's configuration: the buckets of the histograms.
pub fn builder() -> Result<PrometheusBuilder, BuildError> {
    PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), SECONDS_BUCKETS)?
        .set_buckets_for_metric(Matcher::Full("scimd_sqlite_commit_batch_size".to_owned()), BATCH_BUCKETS)
}

/// Installs the recorder for the whole process (`scimd serve`); what it has recorded is
/// rendered by the returned handle.
pub fn install() -> Result<PrometheusHandle, BuildError> {
    builder()?.install_recorder()
}
