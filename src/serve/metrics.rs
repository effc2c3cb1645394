//! Prometheus metrics of the daemon (`GET /metrics`, text format via prometheus-client).

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::store::StepKind;

type Labels = Vec<(String, String)>;

pub struct Metrics {
    registry: Registry,
    pub reconciles: Family<Labels, Counter>,
    pub plans: Family<Labels, Counter>,
    pub applies: Family<Labels, Counter>,
    pub last_sync: Family<Labels, Gauge<f64, AtomicU64>>,
    pub jobs: Family<Labels, Gauge>,
    pub health: Family<Labels, Gauge>,
    pub steps: Family<Labels, Histogram, fn() -> Histogram>,
    pub webhooks: Family<Labels, Counter>,
    pub fetch_errors: Counter,
    pub recover_attempts: Family<Labels, Counter>,
    pub job_health: Family<Labels, Gauge>,
    pub lifecycle: Family<Labels, Counter>,
}

fn l(k: &str, v: &str) -> Labels {
    vec![(k.to_string(), v.to_string())]
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("weir");
        let reconciles = Family::<Labels, Counter>::default();
        let plans = Family::<Labels, Counter>::default();
        let applies = Family::<Labels, Counter>::default();
        let last_sync = Family::<Labels, Gauge<f64, AtomicU64>>::default();
        let jobs = Family::<Labels, Gauge>::default();
        let health = Family::<Labels, Gauge>::default();
        // Apply steps take from milliseconds (a cancel) to minutes (a large savepoint).
        let steps = Family::<Labels, Histogram, fn() -> Histogram>::new_with_constructor(|| {
            Histogram::new([
                0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
            ])
        });
        let webhooks = Family::<Labels, Counter>::default();
        let fetch_errors = Counter::default();
        let recover_attempts = Family::<Labels, Counter>::default();
        let job_health = Family::<Labels, Gauge>::default();
        let lifecycle = Family::<Labels, Counter>::default();
        registry.register(
            "job_health",
            "Health of each running job read by the lifecycle timer: 0 healthy, 1 degraded, 2 failing",
            job_health.clone(),
        );
        registry.register(
            "savepoint_operations",
            "Periodic savepoints and retention disposals, by kind (trigger, dispose) and outcome",
            lifecycle.clone(),
        );
        registry.register(
            "reconciles",
            "Reconciles by outcome (ok, error, repo_invalid)",
            reconciles.clone(),
        );
        registry.register(
            "plans",
            "Plans computed, by result (changes, no_changes)",
            plans.clone(),
        );
        registry.register(
            "applies",
            "Applies by outcome (succeeded, failed)",
            applies.clone(),
        );
        registry.register(
            "last_successful_sync_timestamp_seconds",
            "Unix time of the last reconcile that left the cluster in sync",
            last_sync.clone(),
        );
        registry.register("jobs", "Jobs by sync state", jobs.clone());
        registry.register(
            "jobs_by_health",
            "Jobs by the Flink state of their newest job (RUNNING, FAILED, ..., - for none)",
            health.clone(),
        );
        registry.register(
            "apply_step_duration_seconds",
            "Duration of apply steps (Flink REST call and wait), by step kind and outcome",
            steps.clone(),
        );
        registry.register(
            "webhook_deliveries",
            "Webhook deliveries by receiver and outcome",
            webhooks.clone(),
        );
        registry.register(
            "repo_fetch_errors",
            "Failed fetches of the remote",
            fetch_errors.clone(),
        );
        registry.register(
            "self_heal_attempts",
            "Recover attempts made by self-heal, by job",
            recover_attempts.clone(),
        );
        Metrics {
            registry,
            reconciles,
            plans,
            applies,
            last_sync,
            jobs,
            health,
            steps,
            webhooks,
            fetch_errors,
            recover_attempts,
            job_health,
            lifecycle,
        }
    }

    pub fn reconcile(&self, outcome: &str) {
        self.reconciles.get_or_create(&l("outcome", outcome)).inc();
    }

    /// Sets the health gauge of `job` on `cluster`.
    pub fn set_job_health(&self, job: &str, cluster: &str, health: i64) {
        let labels = vec![
            ("job".to_string(), job.to_string()),
            ("cluster".to_string(), cluster.to_string()),
        ];
        self.job_health.get_or_create(&labels).set(health);
    }

    /// Counts a savepoint operation of the lifecycle timer.
    pub fn savepoint_operation(&self, kind: &str, outcome: &str) {
        let labels = vec![
            ("kind".to_string(), kind.to_string()),
            ("outcome".to_string(), outcome.to_string()),
        ];
        self.lifecycle.get_or_create(&labels).inc();
    }

    pub fn plan(&self, changes: bool) {
        let result = if changes { "changes" } else { "no_changes" };
        self.plans.get_or_create(&l("result", result)).inc();
    }

    pub fn apply(&self, outcome: &str) {
        self.applies.get_or_create(&l("outcome", outcome)).inc();
    }

    pub fn synced(&self, cluster: &str, at_ms: i64) {
        self.last_sync
            .get_or_create(&l("cluster", cluster))
            .set(at_ms as f64 / 1000.0);
    }

    pub fn set_jobs(&self, counts: &std::collections::BTreeMap<String, i64>) {
        self.jobs.clear();
        for (state, n) in counts {
            self.jobs.get_or_create(&l("sync", state)).set(*n);
        }
    }

    pub fn set_health(&self, counts: &std::collections::BTreeMap<String, i64>) {
        self.health.clear();
        for (state, n) in counts {
            self.health.get_or_create(&l("health", state)).set(*n);
        }
    }

    pub fn step(&self, kind: StepKind, outcome: &str, seconds: f64) {
        self.steps
            .get_or_create(&vec![
                ("step".to_string(), kind.as_str().to_string()),
                ("outcome".to_string(), outcome.to_string()),
            ])
            .observe(seconds);
    }

    pub fn webhook(&self, receiver: &str, outcome: &str) {
        self.webhooks
            .get_or_create(&vec![
                ("receiver".to_string(), receiver.to_string()),
                ("outcome".to_string(), outcome.to_string()),
            ])
            .inc();
    }

    pub fn recover_attempt(&self, job: &str) {
        self.recover_attempts.get_or_create(&l("job", job)).inc();
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = encode(&mut out, &self.registry);
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn renders_prometheus_text() {
        let m = super::Metrics::new();
        m.reconcile("ok");
        m.apply("failed");
        m.webhook("github", "rejected");
        m.synced("local", 1_700_000_000_000);
        m.step(crate::store::StepKind::StopWithSavepoint, "succeeded", 0.3);
        m.set_health(&[("RUNNING".to_string(), 2)].into_iter().collect());
        let text = m.render();
        assert!(
            text.contains(
                "weir_apply_step_duration_seconds_count{step=\"stop_with_savepoint\",outcome=\"succeeded\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains("weir_jobs_by_health{health=\"RUNNING\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("weir_reconciles_total{outcome=\"ok\"} 1"),
            "{text}"
        );
        assert!(text.contains("weir_applies_total{outcome=\"failed\"} 1"));
        assert!(
            text.contains(
                "weir_webhook_deliveries_total{receiver=\"github\",outcome=\"rejected\"} 1"
            )
        );
        assert!(text.contains("weir_last_successful_sync_timestamp_seconds{cluster=\"local\"}"));
        assert!(text.ends_with("# EOF\n"));
    }
}
