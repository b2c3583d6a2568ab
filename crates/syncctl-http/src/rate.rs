//! A token-bucket rate limiter on tokio's clock.
//!
//! We do not use governor here: its waits run on a real-time clock, which makes rate-limit
//! tests sleep for real. This bucket runs on `tokio::time`, so tests pause time and stay exact.
//! Size it so that `burst + rate × window` stays within the vendor's rolling limit.

use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

/// Admits `burst` requests at once and `per_second` requests per second after that.
#[derive(Debug)]
pub struct RateLimiter {
    per_second: f64,
    burst: f64,
    state: Mutex<Bucket>,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

impl RateLimiter {
    /// A limiter with a steady rate and a burst allowance (at least 1).
    #[must_use]
    pub fn new(per_second: f64, burst: u32) -> Self {
        let burst = f64::from(burst.max(1));
        Self {
            per_second: per_second.max(f64::MIN_POSITIVE),
            burst,
            state: Mutex::new(Bucket {
                tokens: burst,
                last: Instant::now(),
            }),
        }
    }

    /// Waits until a request may be sent, then takes its token.
    pub async fn acquire(&self) {
        loop {
            let wait = {
                let mut b = self.state.lock().await;
                let now = Instant::now();
                let elapsed = now.duration_since(b.last).as_secs_f64();
                b.tokens = (b.tokens + elapsed * self.per_second).min(self.burst);
                b.last = now;
                if b.tokens >= 1.0 {
                    b.tokens -= 1.0;
                    return;
                }
                Duration::from_secs_f64((1.0 - b.tokens) / self.per_second)
            };
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn burst_then_steady_rate() {
        let l = RateLimiter::new(2.0, 3);
        let start = Instant::now();
        for _ in 0..3 {
            l.acquire().await;
        }
        assert_eq!(start.elapsed(), Duration::ZERO, "the burst is free");
        for _ in 0..4 {
            l.acquire().await;
        }
        let e = start.elapsed();
        assert!(
            e >= Duration::from_millis(1999) && e <= Duration::from_millis(2010),
            "{e:?}"
        );
    }
}
