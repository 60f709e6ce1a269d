use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

/// A monotonically increasing counter.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds one.
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    /// The current value.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Result labels of public requests.
pub const RESULTS: [&str; 9] = [
    "good",
    "revoked",
    "unknown",
    "malformedRequest",
    "internalError",
    "tryLater",
    "unauthorized",
    "not_modified",
    "http_error",
];

/// The responder's Prometheus metrics.
#[derive(Debug, Default)]
pub struct Metrics {
    /// GET requests by result, indexed like [`RESULTS`].
    pub get: [Counter; 9],
    /// POST requests by result, indexed like [`RESULTS`].
    pub post: [Counter; 9],
    /// Responses signed on request.
    pub live_signings: Counter,
    /// Answers served from pre-signed responses.
    pub tier_presigned: Counter,
    /// Latency histogram buckets (seconds) and counts.
    latency: Histogram,
}

#[derive(Debug, Default)]
struct Histogram {
    buckets: [Counter; 12],
    count: Counter,
    sum_micros: Counter,
}

const BUCKETS: [f64; 12] = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0];

impl Metrics {
    /// Counts one request.
    pub fn request(&self, method_get: bool, result: &str, seconds: f64) {
        let idx = RESULTS.iter().position(|r| *r == result).unwrap_or(RESULTS.len() - 1);
        if method_get { &self.get[idx] } else { &self.post[idx] }.inc();
        for (i, b) in BUCKETS.iter().enumerate() {
            if seconds <= *b {
                self.latency.buckets[i].inc();
            }
        }
        self.latency.count.inc();
        self.latency.sum_micros.0.fetch_add((seconds * 1e6) as u64, Ordering::Relaxed);
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut s = String::with_capacity(2048);
        s.push_str(
            "# HELP ocspd_requests_total OCSP requests by method and result.\n# TYPE ocspd_requests_total counter\n",
        );
        for (method, arr) in [("GET", &self.get), ("POST", &self.post)] {
            for (i, r) in RESULTS.iter().enumerate() {
                let _ = writeln!(s, "ocspd_requests_total{{method=\"{method}\",result=\"{r}\"}} {}", arr[i].get());
            }
        }
        let _ = writeln!(s, "# HELP ocspd_live_signings_total Responses signed on request.\n# TYPE ocspd_live_signings_total counter\nocspd_live_signings_total {}", self.live_signings.get());
        let _ = writeln!(s, "# HELP ocspd_tier_answers_total Answers by the tier that produced them.\n# TYPE ocspd_tier_answers_total counter\nocspd_tier_answers_total{{tier=\"presigned\"}} {}\nocspd_tier_answers_total{{tier=\"live\"}} {}", self.tier_presigned.get(), self.live_signings.get());
        s.push_str("# HELP ocspd_request_duration_seconds Time to answer a request.\n# TYPE ocspd_request_duration_seconds histogram\n");
        for (i, b) in BUCKETS.iter().enumerate() {
            let _ =
                writeln!(s, "ocspd_request_duration_seconds_bucket{{le=\"{b}\"}} {}", self.latency.buckets[i].get());
        }
        let count = self.latency.count.get();
        let _ = writeln!(s, "ocspd_request_duration_seconds_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(s, "ocspd_request_duration_seconds_sum {}", self.latency.sum_micros.get() as f64 / 1e6);
        let _ = writeln!(s, "ocspd_request_duration_seconds_count {count}");
        s
    }
}
