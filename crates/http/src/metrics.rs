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

    /// Adds `n`.
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    /// The current value.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Result labels of public requests.
pub const RESULTS: [&str; 10] = [
    "good",
    "revoked",
    "unknown",
    "malformedRequest",
    "internalError",
    "tryLater",
    "unauthorized",
    "not_modified",
    "crl",
    "http_error",
];

/// Tier labels of public requests ("none": no answer was made).
pub const TIERS: [&str; 4] = ["memory", "presigned", "live", "none"];

/// A Prometheus histogram with fixed buckets.
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    buckets: Vec<Counter>,
    count: Counter,
    sum_micros: Counter,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            buckets: bounds.iter().map(|_| Counter::default()).collect(),
            count: Counter::default(),
            sum_micros: Counter::default(),
        }
    }

    /// Records one observation.
    pub fn observe(&self, value: f64) {
        // Buckets are cumulative in the exposition; store per-bucket and sum when rendering.
        if let Some(i) = self.bounds.iter().position(|b| value <= *b) {
            self.buckets[i].inc();
        }
        self.count.inc();
        self.sum_micros.add((value.max(0.0) * 1e6) as u64);
    }

    fn render(&self, s: &mut String, name: &str, help: &str) {
        let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cumulative = 0;
        for (b, c) in self.bounds.iter().zip(&self.buckets) {
            cumulative += c.get();
            let _ = writeln!(s, "{name}_bucket{{le=\"{b}\"}} {cumulative}");
        }
        let count = self.count.get();
        let _ = writeln!(s, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(s, "{name}_sum {}", self.sum_micros.get() as f64 / 1e6);
        let _ = writeln!(s, "{name}_count {count}");
    }
}

const LATENCY: &[f64] = &[0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0];
const AGE: &[f64] = &[60.0, 300.0, 900.0, 3600.0, 14_400.0, 43_200.0, 86_400.0, 172_800.0, 345_600.0, 864_000.0];

/// The responder's Prometheus metrics.
#[derive(Debug)]
pub struct Metrics {
    /// Requests by method (GET, POST), result ([`RESULTS`]) and tier ([`TIERS`]).
    requests: Vec<Counter>,
    /// Responses signed on request.
    pub live_signings: Counter,
    /// Live signings refused for unknown serials or several CertIDs over their rate bound.
    pub live_untrusted_refused: Counter,
    /// Answers served from the memory tier.
    pub tier_memory: Counter,
    /// Lookups the memory tier could not answer.
    pub memory_misses: Counter,
    /// Certificates (or issuers) evicted from the memory tier.
    pub memory_evictions: Counter,
    /// Answers served from pre-signed responses.
    pub tier_presigned: Counter,
    /// Lookups with no current pre-signed response.
    pub presigned_misses: Counter,
    /// Answers withheld (tryLater): this fleet node was out of service, or the status changed twice while answering.
    pub out_of_service: Counter,
    latency: Histogram,
    age: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            requests: (0..2 * RESULTS.len() * TIERS.len()).map(|_| Counter::default()).collect(),
            live_signings: Counter::default(),
            live_untrusted_refused: Counter::default(),
            tier_memory: Counter::default(),
            memory_misses: Counter::default(),
            memory_evictions: Counter::default(),
            tier_presigned: Counter::default(),
            presigned_misses: Counter::default(),
            out_of_service: Counter::default(),
            latency: Histogram::new(LATENCY),
            age: Histogram::new(AGE),
        }
    }
}

impl Metrics {
    /// Counts one request: `tier` is an index into [`TIERS`], `age` the served response's age
    /// (now - producedAt) when one was served.
    pub fn request(&self, method_get: bool, result: &str, tier: usize, seconds: f64, age: Option<i64>) {
        let r = RESULTS.iter().position(|x| *x == result).unwrap_or(RESULTS.len() - 1);
        let m = usize::from(!method_get);
        self.requests[(m * RESULTS.len() + r) * TIERS.len() + tier.min(TIERS.len() - 1)].inc();
        self.latency.observe(seconds);
        if let Some(age) = age {
            self.age.observe(age as f64);
        }
    }

    /// Requests counted with this method, result and tier.
    pub fn requests(&self, method_get: bool, result: &str, tier: &str) -> u64 {
        let (Some(r), Some(t)) = (RESULTS.iter().position(|x| *x == result), TIERS.iter().position(|x| *x == tier))
        else {
            return 0;
        };
        self.requests[(usize::from(!method_get) * RESULTS.len() + r) * TIERS.len() + t].get()
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut s = String::with_capacity(8192);
        s.push_str("# HELP ocspd_requests_total OCSP requests by method, result and the tier that answered.\n# TYPE ocspd_requests_total counter\n");
        for (m, method) in ["GET", "POST"].iter().enumerate() {
            for (r, result) in RESULTS.iter().enumerate() {
                for (t, tier) in TIERS.iter().enumerate() {
                    let n = self.requests[(m * RESULTS.len() + r) * TIERS.len() + t].get();
                    let _ = writeln!(
                        s,
                        "ocspd_requests_total{{method=\"{method}\",result=\"{result}\",tier=\"{tier}\"}} {n}"
                    );
                }
            }
        }
        let _ = writeln!(s, "# HELP ocspd_live_signings_total Responses signed on request.\n# TYPE ocspd_live_signings_total counter\nocspd_live_signings_total {}", self.live_signings.get());
        let _ = writeln!(s, "# HELP ocspd_live_untrusted_refused_total Live signings for unknown serials or several CertIDs refused (tryLater) over --untrusted-signing-rate.\n# TYPE ocspd_live_untrusted_refused_total counter\nocspd_live_untrusted_refused_total {}", self.live_untrusted_refused.get());
        let memory = (self.tier_memory.get(), self.memory_misses.get());
        let presigned = (self.tier_presigned.get(), self.presigned_misses.get());
        let _ = writeln!(s, "# HELP ocspd_tier_answers_total Answers by the tier that produced them.\n# TYPE ocspd_tier_answers_total counter\nocspd_tier_answers_total{{tier=\"memory\"}} {}\nocspd_tier_answers_total{{tier=\"presigned\"}} {}\nocspd_tier_answers_total{{tier=\"live\"}} {}", memory.0, presigned.0, self.live_signings.get());
        let _ = writeln!(s, "# HELP ocspd_tier_misses_total Lookups a tier passed on to the next one.\n# TYPE ocspd_tier_misses_total counter\nocspd_tier_misses_total{{tier=\"memory\"}} {}\nocspd_tier_misses_total{{tier=\"presigned\"}} {}", memory.1, presigned.1);
        let ratio = |(h, m): (u64, u64)| if h + m == 0 { 0.0 } else { h as f64 / (h + m) as f64 };
        let _ = writeln!(s, "# HELP ocspd_tier_hit_ratio Hits over lookups of each cache tier since start.\n# TYPE ocspd_tier_hit_ratio gauge\nocspd_tier_hit_ratio{{tier=\"memory\"}} {:.6}\nocspd_tier_hit_ratio{{tier=\"presigned\"}} {:.6}", ratio(memory), ratio(presigned));
        let _ = writeln!(s, "# HELP ocspd_memory_tier_evictions_total Certificates and issuers evicted from the memory tier by changes.\n# TYPE ocspd_memory_tier_evictions_total counter\nocspd_memory_tier_evictions_total {}", self.memory_evictions.get());
        let _ = writeln!(s, "# HELP ocspd_out_of_service_answers_total Answers withheld (tryLater): this fleet node was out of service, or the status changed twice while answering.\n# TYPE ocspd_out_of_service_answers_total counter\nocspd_out_of_service_answers_total {}", self.out_of_service.get());
        self.latency.render(&mut s, "ocspd_request_duration_seconds", "Time to answer a request.");
        self.age.render(&mut s, "ocspd_response_age_seconds", "Age (now - producedAt) of the responses served.");
        s
    }
}
