//! What the service measures, in the Prometheus text format at `GET /metrics`.
//!
//! Two kinds of figure, each with one source:
//! - **counted as it happens** (requests, their latency, problem codes, scrubs): the
//!   [`crate::observe`] middleware and the scrub thread add to them;
//! - **read when scraped** (the ledger's size, the age of its last checkpoint and of its signing
//!   key, free disk, spend codes held, whether writes are refused): [`render`] asks the stores,
//!   so a figure is never staler than the scrape.
//!
//! Every name starts `timecredits_`; the process's own figures (`process_*`: memory, CPU, open
//! files) come from the `prometheus` crate. deploy/README.md ("Metrics") lists them with what to
//! alert on.
//! The registry belongs to one service (not the crate's global one), so several services in one
//! process (the tests) keep their figures apart.

use std::path::Path;
use std::sync::Arc;

use prometheus::{
    Encoder, Gauge, Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec,
    Opts, Registry, TextEncoder,
};

use timecredits_ledger::observer::{BatchObserver, Observer, SealedBatch};

use crate::AppState;

/// The media type of the text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Request latency buckets, in seconds: from a cached read (under a millisecond) to a write
/// waiting out a full queue.
/// Requests per group commit: one under light load, up to the writer's bound (1,024) under
/// heavy load.
const BATCH_BUCKETS: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0,
];

/// `fdatasync` durations, in seconds: tens of microseconds on a fast SSD with a cache, tens of
/// milliseconds on a disk that flushes.
const FSYNC_BUCKETS: &[f64] = &[
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
];

const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The service's figures. Counters are added to where things happen; gauges are set by
/// [`render`] from the stores.
pub struct Metrics {
    registry: Registry,
    /// Requests answered, by route pattern, method and status.
    pub requests: IntCounterVec,
    /// Time from a request's arrival to its answer, by route pattern.
    pub latency: HistogramVec,
    /// Problem answers by their stable code (`rate_limited` and `too_many_attempts` are the
    /// rate-limit and spend-code-guess refusals).
    pub problems: IntCounterVec,
    /// Journal scrubs by result: `sound`, `damaged`, `failed` (could not run).
    pub scrubs: IntCounterVec,
    /// When the last scrub that found no damage ended (Unix seconds).
    pub scrub_last_sound: Gauge,
    /// Requests per sealed batch (group commit); its count is the ledger's commits.
    pub batch_requests: Histogram,
    /// How long each batch's journal `fdatasync` took.
    pub fsync: Histogram,
    entries: IntGauge,
    queued: IntGauge,
    unapplied: IntGauge,
    checkpoint_age: Gauge,
    signing_key_age: Gauge,
    writes_refused: IntGaugeVec,
    disk_free: IntGauge,
    disk_size: IntGauge,
    journal_bytes: IntGauge,
    spend_codes_held: IntGauge,
    redemptions_remembered: IntGauge,
}

impl Metrics {
    /// Registers every figure in a registry of its own.
    pub fn new() -> Metrics {
        let registry =
            Registry::new_custom(Some("timecredits".into()), None).expect("a valid metric prefix");
        let metrics = Metrics {
            requests: IntCounterVec::new(
                Opts::new(
                    "http_requests_total",
                    "Requests answered, by route, method and status.",
                ),
                &["route", "method", "status"],
            )
            .expect("valid metric"),
            latency: HistogramVec::new(
                HistogramOpts::new(
                    "http_request_duration_seconds",
                    "Time from a request's arrival to its answer, by route.",
                )
                .buckets(LATENCY_BUCKETS.to_vec()),
                &["route"],
            )
            .expect("valid metric"),
            problems: IntCounterVec::new(
                Opts::new(
                    "problems_total",
                    "Problem answers by code (rate_limited, too_many_attempts: throttled).",
                ),
                &["code"],
            )
            .expect("valid metric"),
            scrubs: IntCounterVec::new(
                Opts::new(
                    "scrubs_total",
                    "Journal scrubs by result (sound, damaged, failed).",
                ),
                &["result"],
            )
            .expect("valid metric"),
            scrub_last_sound: Gauge::new(
                "scrub_last_sound_timestamp_seconds",
                "When the last scrub that found no damage ended (Unix time).",
            )
            .expect("valid metric"),
            batch_requests: Histogram::with_opts(
                HistogramOpts::new(
                    "ledger_batch_requests",
                    "Requests per group commit; the count is the ledger's commits.",
                )
                .buckets(BATCH_BUCKETS.to_vec()),
            )
            .expect("valid metric"),
            fsync: Histogram::with_opts(
                HistogramOpts::new(
                    "ledger_fsync_seconds",
                    "How long each commit's journal fdatasync took.",
                )
                .buckets(FSYNC_BUCKETS.to_vec()),
            )
            .expect("valid metric"),
            entries: IntGauge::new("ledger_entries", "Entries in the ledger (its tree size).")
                .expect("valid metric"),
            queued: IntGauge::new(
                "ledger_queued_requests",
                "Requests waiting in the ledger writer's queue.",
            )
            .expect("valid metric"),
            unapplied: IntGauge::new(
                "ledger_unapplied_entries",
                "Entries answered but not yet applied to the state (the applier's lag).",
            )
            .expect("valid metric"),
            checkpoint_age: Gauge::new(
                "checkpoint_age_seconds",
                "Seconds since the last entry, which the latest signed checkpoint covers.",
            )
            .expect("valid metric"),
            signing_key_age: Gauge::new(
                "signing_key_age_seconds",
                "Seconds since the current checkpoint signing key took over.",
            )
            .expect("valid metric"),
            writes_refused: IntGaugeVec::new(
                Opts::new(
                    "writes_refused",
                    "1 while a store refuses writes (disk full, damage, a failed write).",
                ),
                &["store"],
            )
            .expect("valid metric"),
            disk_free: IntGauge::new(
                "data_dir_free_bytes",
                "Bytes free for the service on the data directory's file system.",
            )
            .expect("valid metric"),
            disk_size: IntGauge::new(
                "data_dir_size_bytes",
                "Size of the data directory's file system.",
            )
            .expect("valid metric"),
            journal_bytes: IntGauge::new("journal_bytes", "Bytes in the ledger's journal.")
                .expect("valid metric"),
            spend_codes_held: IntGauge::new(
                "spend_codes_held",
                "Spend codes held: unused ones, and expired ones until they are swept.",
            )
            .expect("valid metric"),
            redemptions_remembered: IntGauge::new(
                "redemptions_remembered",
                "Redemptions remembered to answer repeats (the last 24 hours).",
            )
            .expect("valid metric"),
            registry,
        };
        metrics.register_all();
        metrics
    }

    fn register_all(&self) {
        let collectors: [Box<dyn prometheus::core::Collector>; 18] = [
            Box::new(self.batch_requests.clone()),
            Box::new(self.fsync.clone()),
            Box::new(self.queued.clone()),
            Box::new(self.unapplied.clone()),
            Box::new(self.requests.clone()),
            Box::new(self.latency.clone()),
            Box::new(self.problems.clone()),
            Box::new(self.scrubs.clone()),
            Box::new(self.scrub_last_sound.clone()),
            Box::new(self.entries.clone()),
            Box::new(self.checkpoint_age.clone()),
            Box::new(self.signing_key_age.clone()),
            Box::new(self.writes_refused.clone()),
            Box::new(self.disk_free.clone()),
            Box::new(self.disk_size.clone()),
            Box::new(self.journal_bytes.clone()),
            Box::new(self.spend_codes_held.clone()),
            Box::new(self.redemptions_remembered.clone()),
        ];
        for collector in collectors {
            self.registry
                .register(collector)
                .expect("each figure is registered once");
        }
        // The process's own figures are not prefixed: `process_*` is what dashboards expect.
        let process = prometheus::process_collector::ProcessCollector::for_self();
        if let Err(e) = prometheus::default_registry().register(Box::new(process)) {
            // Already registered by an earlier service in this process (the tests).
            tracing::debug!(error = %e, "process metrics already registered");
        }
    }

    /// One request's answer: its route pattern (`unmatched` for none), method, status (as its
    /// three digits), the problem code it carried (if any) and how long it took.
    pub fn observe_request(
        &self,
        route: &str,
        method: &str,
        status: &str,
        problem: Option<&str>,
        seconds: f64,
    ) {
        self.requests
            .with_label_values(&[route, method, status])
            .inc();
        self.latency.with_label_values(&[route]).observe(seconds);
        if let Some(code) = problem {
            self.problems.with_label_values(&[code]).inc();
        }
    }
}

/// The ledger writer's figures, added to by the writer's thread at each sealed batch.
struct LedgerFigures {
    batch_requests: Histogram,
    fsync: Histogram,
}

impl BatchObserver for LedgerFigures {
    fn sealed(&self, batch: &SealedBatch) {
        self.batch_requests.observe(batch.requests as f64);
        self.fsync.observe(batch.sync.as_secs_f64());
    }
}

impl Metrics {
    /// The observer the ledger reports its sealed batches to.
    pub fn ledger_observer(&self) -> Observer {
        Observer(Arc::new(LedgerFigures {
            batch_requests: self.batch_requests.clone(),
            fsync: self.fsync.clone(),
        }))
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

/// The Prometheus text of every figure, the read-when-scraped ones read now from `state` and
/// the data directory `dir`.
pub fn render(state: &AppState, dir: &Path) -> String {
    let m = &state.metrics;
    let ledger = &state.ledger;
    let now = chrono::Utc::now();
    let age = |seq: u64| -> Option<f64> {
        let entry = ledger.entry(seq).ok()??;
        Some((now - entry.recorded).num_milliseconds().max(0) as f64 / 1000.0)
    };
    m.queued
        .set(i64::try_from(ledger.queued()).unwrap_or(i64::MAX));
    m.unapplied
        .set(i64::try_from(ledger.unapplied()).unwrap_or(i64::MAX));
    if let Ok(size) = ledger.size() {
        m.entries.set(i64::try_from(size).unwrap_or(i64::MAX));
        if let Some(seconds) = size.checked_sub(1).and_then(age) {
            m.checkpoint_age.set(seconds);
        }
    }
    let key_since = match ledger.key_rotations() {
        Ok(rotations) => rotations.last().map_or(0, |entry| entry.seq),
        Err(_) => 0,
    };
    if let Some(seconds) = age(key_since) {
        m.signing_key_age.set(seconds);
    }
    m.writes_refused
        .with_label_values(&["ledger"])
        .set(ledger.refusing_writes().is_some().into());
    m.writes_refused
        .with_label_values(&["registry"])
        .set(state.registry.write_refusal().is_some().into());
    if let Ok(fs) = rustix::fs::statvfs(dir) {
        let bytes =
            |blocks: u64| i64::try_from(blocks.saturating_mul(fs.f_frsize)).unwrap_or(i64::MAX);
        m.disk_free.set(bytes(fs.f_bavail));
        m.disk_size.set(bytes(fs.f_blocks));
    }
    if let Ok(meta) = std::fs::metadata(dir.join(timecredits_ledger::layout::JOURNAL)) {
        m.journal_bytes
            .set(i64::try_from(meta.len()).unwrap_or(i64::MAX));
    }
    let (codes, redemptions) = state.spend_codes.len();
    m.spend_codes_held
        .set(i64::try_from(codes).unwrap_or(i64::MAX));
    m.redemptions_remembered
        .set(i64::try_from(redemptions).unwrap_or(i64::MAX));

    let mut families = m.registry.gather();
    families.extend(prometheus::default_registry().gather());
    let mut out = Vec::new();
    // Encoding into memory cannot fail but for a malformed family, which the registry refuses
    // at registration.
    if let Err(e) = TextEncoder::new().encode(&families, &mut out) {
        tracing::error!(error = %e, "the metrics could not be encoded");
    }
    String::from_utf8(out).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_counts_once_under_its_route_status_and_code() {
        let metrics = Metrics::new();
        metrics.observe_request(
            "/v1/earn",
            "POST",
            "422",
            Some("insufficient_credits"),
            0.002,
        );
        metrics.observe_request("/v1/earn", "POST", "201", None, 0.001);
        let text = {
            let mut out = Vec::new();
            TextEncoder::new()
                .encode(&metrics.registry.gather(), &mut out)
                .unwrap();
            String::from_utf8(out).unwrap()
        };
        assert!(text.contains(
            r#"timecredits_http_requests_total{method="POST",route="/v1/earn",status="422"} 1"#
        ));
        assert!(text.contains(r#"timecredits_problems_total{code="insufficient_credits"} 1"#));
        assert!(
            text.contains(r#"timecredits_http_request_duration_seconds_count{route="/v1/earn"} 2"#)
        );
    }
}
