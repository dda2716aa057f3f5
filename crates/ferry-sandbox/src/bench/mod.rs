//! The secure-preflight benchmark (`ferry bench preflight`): sandbox start to first served
//! request for each backend, the mirroring proxy's added latency at a fixed request rate, and
//! the requests lost during a switchover under that load (must be 0). Figures only, no
//! pass/fail thresholds beyond the lost-request count.

mod proxy;
mod start;

pub use proxy::{ProxyFigures, measure_proxy};
pub use start::{StartFigures, measure_start};

use std::fmt;
use std::time::Duration;

/// What to measure.
#[derive(Debug, Clone, Copy)]
pub struct BenchOptions {
    /// Sandbox starts per backend.
    pub rounds: usize,
    /// Client requests per second.
    pub rate: u64,
    /// Seconds per load phase.
    pub seconds: u64,
}

impl Default for BenchOptions {
    /// 3 rounds, 500 requests/s, 3 s per phase.
    fn default() -> Self {
        BenchOptions { rounds: 3, rate: 500, seconds: 3 }
    }
}

/// Every figure of one run.
#[derive(Debug, Clone)]
pub struct BenchReport {
    /// Sandbox start per backend.
    pub start: Vec<StartFigures>,
    /// Proxy latency and switchover.
    pub proxy: ProxyFigures,
}

/// Runs the whole benchmark.
pub async fn run(opts: &BenchOptions) -> BenchReport {
    let start = measure_start(opts.rounds).await;
    let proxy = measure_proxy(opts.rate, opts.seconds).await;
    BenchReport { start, proxy }
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

impl fmt::Display for BenchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "sandbox start to first served request (static busybox httpd):")?;
        for s in &self.start {
            match (&s.error, s.times.is_empty()) {
                (Some(e), _) => writeln!(f, "  {:<34} not measured: {e}", s.backend)?,
                (None, true) => writeln!(f, "  {:<34} not measured", s.backend)?,
                (None, false) => {
                    let mut t = s.times.clone();
                    t.sort();
                    writeln!(
                        f,
                        "  {:<34} median {:>10}  min {:>10}  max {:>10}  ({} rounds)",
                        s.backend,
                        ms(t[t.len() / 2]),
                        ms(t[0]),
                        ms(t[t.len() - 1]),
                        t.len()
                    )?;
                }
            }
        }
        write!(f, "{}", self.proxy)
    }
}
