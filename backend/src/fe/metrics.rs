//! `/metrics` in Prometheus text: requests by route, method and status with latency
//! histograms, changes by outcome, dashboards reachable, audit rows.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;

/// Latency bucket bounds, seconds.
const BUCKETS: [f64; 10] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0];

#[derive(Debug, Default, Clone)]
struct Series {
    count: u64,
    sum: f64,
    buckets: [u64; BUCKETS.len()],
}

/// A method as a metric label: the standard ones, else `OTHER` (labels must stay few).
pub fn method_label(method: &str) -> &'static str {
    match method {
        "GET" => "GET",
        "HEAD" => "HEAD",
        "POST" => "POST",
        "PUT" => "PUT",
        "DELETE" => "DELETE",
        "PATCH" => "PATCH",
        "OPTIONS" => "OPTIONS",
        _ => "OTHER",
    }
}

/// The fe's counters.
#[derive(Debug, Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, String, u16), Series>>,
    changes_ok: AtomicU64,
    changes_failed: AtomicU64,
}

impl Metrics {
    /// Counts one request.
    pub fn observe(&self, route: &str, method: &str, status: u16, took: Duration) {
        let secs = took.as_secs_f64();
        let mut m = self.requests.lock();
        let s = m
            .entry((route.to_string(), method.to_string(), status))
            .or_default();
        s.count += 1;
        s.sum += secs;
        for (i, b) in BUCKETS.iter().enumerate() {
            if secs <= *b {
                s.buckets[i] += 1;
            }
        }
    }

    /// Counts a change that succeeded.
    pub fn changes_ok(&self) {
        self.changes_ok.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a change that failed.
    pub fn changes_failed(&self) {
        self.changes_failed.fetch_add(1, Ordering::Relaxed);
    }

    /// The exposition text.
    pub fn render(&self, products: usize, reachable: usize, audit_rows: i64) -> String {
        let mut out = String::new();
        let esc = |s: &str| {
            s.replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('\n', "\\n")
        };
        out.push_str("# HELP codis_fe_requests_total HTTP requests by route, method and status.\n");
        out.push_str("# TYPE codis_fe_requests_total counter\n");
        let m = self.requests.lock().clone();
        for ((route, method, status), s) in &m {
            let _ = writeln!(
                out,
                "codis_fe_requests_total{{route=\"{}\",method=\"{method}\",status=\"{status}\"}} {}",
                esc(route),
                s.count
            );
        }
        out.push_str("# HELP codis_fe_request_duration_seconds HTTP request latency.\n");
        out.push_str("# TYPE codis_fe_request_duration_seconds histogram\n");
        for ((route, method, status), s) in &m {
            let labels = format!(
                "route=\"{}\",method=\"{method}\",status=\"{status}\"",
                esc(route)
            );
            for (i, b) in BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "codis_fe_request_duration_seconds_bucket{{{labels},le=\"{b}\"}} {}",
                    s.buckets[i]
                );
            }
            let _ = writeln!(
                out,
                "codis_fe_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
                s.count
            );
            let _ = writeln!(
                out,
                "codis_fe_request_duration_seconds_sum{{{labels}}} {}",
                s.sum
            );
            let _ = writeln!(
                out,
                "codis_fe_request_duration_seconds_count{{{labels}}} {}",
                s.count
            );
        }
        out.push_str("# HELP codis_fe_changes_total Changes made through the fe, by outcome.\n");
        out.push_str("# TYPE codis_fe_changes_total counter\n");
        let _ = writeln!(
            out,
            "codis_fe_changes_total{{outcome=\"ok\"}} {}",
            self.changes_ok.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "codis_fe_changes_total{{outcome=\"error\"}} {}",
            self.changes_failed.load(Ordering::Relaxed)
        );
        out.push_str(
            "# HELP codis_fe_products Product lines known.\n# TYPE codis_fe_products gauge\n",
        );
        let _ = writeln!(out, "codis_fe_products {products}");
        out.push_str(
            "# HELP codis_fe_dashboards_reachable Dashboards whose last poll succeeded.\n\
             # TYPE codis_fe_dashboards_reachable gauge\n",
        );
        let _ = writeln!(out, "codis_fe_dashboards_reachable {reachable}");
        out.push_str("# HELP codis_fe_audit_rows Rows in the audit history.\n# TYPE codis_fe_audit_rows gauge\n");
        let _ = writeln!(out, "codis_fe_audit_rows {audit_rows}");
        out
    }
}
