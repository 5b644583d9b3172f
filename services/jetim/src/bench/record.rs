//! What a load scenario records while it runs: latency histograms (HDR, microseconds) per
//! rate step, and a per-second series for the progress line and the plot.
//!
//! Latency is measured from the time a message was *due* to be sent, not from when the
//! client got round to sending it, so a client that falls behind shows up as latency instead
//! of quietly sending less (no coordinated omission).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

use hdrhistogram::Histogram;
use serde::Serialize;

/// The longest latency a histogram holds, in microseconds; longer ones count as this.
const MAX_MICROS: u64 = 120_000_000;

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_MICROS, 3).expect("valid histogram bounds")
}

/// Offered rates over time: `rates[k]` messages a second during step `k`, each step
/// `step_micros` long, starting at `start_micros` on the run's clock.
#[derive(Debug, Clone)]
pub(crate) struct Schedule {
    pub(crate) start_micros: u64,
    pub(crate) step_micros: u64,
    pub(crate) rates: Vec<f64>,
    /// Load at the first rate for this long before `start_micros`, counted in no step: a
    /// system that jumps from idle to full rate spends its first seconds on cold caches and
    /// growing batches, which would otherwise count against the first step.
    pub(crate) ramp_micros: u64,
}

impl Schedule {
    /// The step a message due at `due_micros` belongs to; `None` before the load starts.
    pub(crate) fn step_of(&self, due_micros: u64) -> Option<usize> {
        let since = due_micros.checked_sub(self.start_micros)?;
        let step = usize::try_from(since / self.step_micros.max(1)).ok()?;
        (step < self.rates.len()).then_some(step)
    }

    /// The send times of sender `index` of `senders`: each sender sends `rate / senders` a
    /// second, the senders evenly staggered, so the total is `rate` spread smoothly.
    pub(crate) fn sends(&self, index: usize, senders: usize) -> impl Iterator<Item = u64> + '_ {
        let share = (index as f64 + 0.5) / senders.max(1) as f64;
        let ramp = self.rates.first().map(|rate| {
            (
                self.start_micros.saturating_sub(self.ramp_micros),
                self.start_micros,
                *rate,
            )
        });
        let steps = self.rates.iter().enumerate().map(move |(step, rate)| {
            let start = self.start_micros + self.step_micros * step as u64;
            (start, start + self.step_micros, *rate)
        });
        ramp.into_iter()
            .chain(steps)
            .flat_map(move |(start, end, rate)| {
                let interval = 1e6 * senders as f64 / rate.max(1e-3);
                (0..)
                    .map(move |n| start + ((share + n as f64) * interval) as u64)
                    .take_while(move |due| *due < end)
            })
    }
}

/// One rate step's histograms and counts.
struct Step {
    ack: Histogram<u64>,
    deliver: Histogram<u64>,
    sent: u64,
    acked: u64,
    delivered: u64,
    /// When the step's last ack and last delivery came (µs on the run's clock).
    last_ack: u64,
    last_delivery: u64,
}

/// One second of the run (by when things happened).
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub(crate) struct Second {
    /// Seconds since the load started.
    pub(crate) second: u64,
    pub(crate) sent: u64,
    pub(crate) acked: u64,
    pub(crate) delivered: u64,
    /// Send→deliver of what was delivered in this second, milliseconds.
    pub(crate) deliver_p50_ms: f64,
    pub(crate) deliver_p99_ms: f64,
    pub(crate) deliver_max_ms: f64,
}

struct Inner {
    steps: Vec<Step>,
    seconds: Vec<(Second, Histogram<u64>)>,
}

/// Shared by every simulated client of a run.
pub(crate) struct Recorder {
    epoch: Instant,
    /// Set when the load starts; until then everything is warm-up.
    schedule: OnceLock<Schedule>,
    inner: Mutex<Inner>,
    /// Totals over the whole run, warm-up included.
    pub(crate) sent: AtomicU64,
    pub(crate) acked: AtomicU64,
    pub(crate) refused: AtomicU64,
    pub(crate) delivered: AtomicU64,
}

/// A latency distribution, in milliseconds.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub(crate) struct Summary {
    pub(crate) name: String,
    pub(crate) count: u64,
    pub(crate) p50_ms: f64,
    pub(crate) p99_ms: f64,
    pub(crate) p999_ms: f64,
    pub(crate) max_ms: f64,
}

impl Summary {
    fn of(name: impl Into<String>, histogram: &Histogram<u64>) -> Self {
        let ms = |micros: u64| micros as f64 / 1000.0;
        Self {
            name: name.into(),
            count: histogram.len(),
            p50_ms: ms(histogram.value_at_quantile(0.50)),
            p99_ms: ms(histogram.value_at_quantile(0.99)),
            p999_ms: ms(histogram.value_at_quantile(0.999)),
            max_ms: ms(histogram.max()),
        }
    }
}

/// What one rate step achieved.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct StepResult {
    pub(crate) offered_per_second: f64,
    pub(crate) seconds: f64,
    pub(crate) sent: u64,
    pub(crate) acked: u64,
    pub(crate) delivered: u64,
    /// Acknowledged messages a second, over the step or until its last ack if that came
    /// later (a server that falls behind does not get credit for the backlog).
    pub(crate) acked_per_second: f64,
    /// Deliveries a second, likewise.
    pub(crate) delivered_per_second: f64,
    pub(crate) ack: Summary,
    pub(crate) deliver: Summary,
}

impl Recorder {
    pub(crate) fn new(epoch: Instant) -> Self {
        Self {
            epoch,
            schedule: OnceLock::new(),
            inner: Mutex::new(Inner {
                steps: Vec::new(),
                seconds: Vec::new(),
            }),
            sent: AtomicU64::new(0),
            acked: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
        }
    }

    /// The shared state; a panicked holder leaves nothing half-done that matters here.
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// Starts the load: what is due from now on counts in `schedule`'s steps.
    pub(crate) fn start(&self, schedule: Schedule) {
        let steps = schedule
            .rates
            .iter()
            .map(|_| Step {
                ack: histogram(),
                deliver: histogram(),
                sent: 0,
                acked: 0,
                delivered: 0,
                last_ack: 0,
                last_delivery: 0,
            })
            .collect();
        self.lock().steps = steps;
        let _ = self.schedule.set(schedule);
    }

    pub(crate) fn schedule(&self) -> Option<&Schedule> {
        self.schedule.get()
    }

    /// Microseconds since the run's epoch.
    pub(crate) fn now_micros(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    pub(crate) fn instant_at(&self, micros: u64) -> tokio::time::Instant {
        tokio::time::Instant::from_std(self.epoch + std::time::Duration::from_micros(micros))
    }

    pub(crate) fn sent(&self, due: u64) {
        self.sent.fetch_add(1, Ordering::Relaxed);
        self.count(due, None, |step| step.sent += 1, |second| second.sent += 1);
    }

    pub(crate) fn refused(&self) {
        self.refused.fetch_add(1, Ordering::Relaxed);
    }

    /// The sender heard the reply to a message due at `due`.
    pub(crate) fn acked(&self, due: u64) {
        self.acked.fetch_add(1, Ordering::Relaxed);
        let now = self.now_micros();
        let latency = now.saturating_sub(due);
        self.count(
            due,
            None,
            |step| {
                step.acked += 1;
                step.last_ack = step.last_ack.max(now);
                let _ = step.ack.record(latency.clamp(1, MAX_MICROS));
            },
            |second| second.acked += 1,
        );
    }

    /// A recipient got a message due at `due`.
    pub(crate) fn delivered(&self, due: u64) {
        self.delivered.fetch_add(1, Ordering::Relaxed);
        let now = self.now_micros();
        let latency = now.saturating_sub(due).clamp(1, MAX_MICROS);
        self.count(
            due,
            Some(latency),
            |step| {
                step.delivered += 1;
                step.last_delivery = step.last_delivery.max(now);
                let _ = step.deliver.record(latency);
            },
            |second| second.delivered += 1,
        );
    }

    /// Counts an event of a message due at `due` in its step (by due time) and in the
    /// second it happened.
    fn count(
        &self,
        due: u64,
        deliver_latency: Option<u64>,
        in_step: impl FnOnce(&mut Step),
        in_second: impl FnOnce(&mut Second),
    ) {
        let Some(schedule) = self.schedule.get() else {
            return; // warm-up
        };
        let Some(step) = schedule.step_of(due) else {
            return; // warm-up
        };
        let second = self.now_micros().saturating_sub(schedule.start_micros) / 1_000_000;
        let mut inner = self.lock();
        in_step(&mut inner.steps[step]);
        let index = usize::try_from(second).unwrap_or(usize::MAX);
        if index > 100_000 {
            return;
        }
        while inner.seconds.len() <= index {
            let second = inner.seconds.len() as u64;
            inner.seconds.push((
                Second {
                    second,
                    ..Second::default()
                },
                histogram(),
            ));
        }
        let (counts, latencies) = &mut inner.seconds[index];
        in_second(counts);
        if let Some(latency) = deliver_latency {
            let _ = latencies.record(latency);
        }
    }

    /// Step `step` so far.
    pub(crate) fn step(&self, step: usize) -> StepResult {
        let inner = self.lock();
        let counts = &inner.steps[step];
        let schedule = self
            .schedule
            .get()
            .expect("steps exist once the load started");
        let seconds = schedule.step_micros as f64 / 1e6;
        let start = schedule.start_micros + schedule.step_micros * step as u64;
        let until = |last: u64| (last.saturating_sub(start) as f64 / 1e6).max(seconds);
        StepResult {
            offered_per_second: schedule.rates[step],
            seconds,
            sent: counts.sent,
            acked: counts.acked,
            delivered: counts.delivered,
            acked_per_second: counts.acked as f64 / until(counts.last_ack),
            delivered_per_second: counts.delivered as f64 / until(counts.last_delivery),
            ack: Summary::of("send→ack", &counts.ack),
            deliver: Summary::of("send→deliver", &counts.deliver),
        }
    }

    /// Send→ack and send→deliver over the steps `steps`, merged.
    pub(crate) fn overall(&self, steps: std::ops::Range<usize>) -> (Summary, Summary) {
        let inner = self.lock();
        let (mut ack, mut deliver) = (histogram(), histogram());
        for step in &inner.steps[steps] {
            let _ = ack.add(&step.ack);
            let _ = deliver.add(&step.deliver);
        }
        (
            Summary::of("send→ack", &ack),
            Summary::of("send→deliver", &deliver),
        )
    }

    /// The per-second series.
    pub(crate) fn seconds(&self) -> Vec<Second> {
        let inner = self.lock();
        inner.seconds.iter().map(summarize).collect()
    }

    /// The last second that is over (the one before the current one), for the progress line.
    pub(crate) fn last_full_second(&self) -> Option<Second> {
        let inner = self.lock();
        inner.seconds.iter().rev().nth(1).map(summarize)
    }
}

/// A second's counts with its send→deliver quantiles.
fn summarize((counts, latencies): &(Second, Histogram<u64>)) -> Second {
    let ms = |micros: u64| micros as f64 / 1000.0;
    let (p50, p99, max) = if latencies.is_empty() {
        (0.0, 0.0, 0.0)
    } else {
        (
            ms(latencies.value_at_quantile(0.5)),
            ms(latencies.value_at_quantile(0.99)),
            ms(latencies.max()),
        )
    };
    Second {
        deliver_p50_ms: p50,
        deliver_p99_ms: p99,
        deliver_max_ms: max,
        ..*counts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule(rates: &[f64]) -> Schedule {
        Schedule {
            start_micros: 1_000_000,
            step_micros: 2_000_000,
            rates: rates.to_vec(),
            ramp_micros: 0,
        }
    }

    #[test]
    fn the_ramp_sends_at_the_first_rate_before_the_steps_and_counts_in_none() {
        let mut schedule = schedule(&[100.0, 300.0]);
        schedule.ramp_micros = 500_000;
        let all: Vec<u64> = (0..2)
            .flat_map(|sender| schedule.sends(sender, 2))
            .collect();
        let ramp: Vec<u64> = all.iter().copied().filter(|due| *due < 1_000_000).collect();
        assert_eq!(ramp.len(), 50, "100/s for half a second");
        assert!(ramp.iter().all(|due| *due >= 500_000));
        assert!(ramp.iter().all(|due| schedule.step_of(*due).is_none()));
        assert_eq!(
            all.len() - ramp.len(),
            800,
            "the steps themselves are unchanged"
        );
    }

    #[test]
    fn senders_together_send_each_steps_rate_spread_over_the_step() {
        let schedule = schedule(&[100.0, 300.0]);
        let mut all: Vec<u64> = (0..4)
            .flat_map(|sender| schedule.sends(sender, 4))
            .collect();
        all.sort_unstable();
        let first = all.iter().filter(|due| **due < 3_000_000).count();
        let second = all.iter().filter(|due| **due >= 3_000_000).count();
        assert_eq!((first, second), (200, 600), "rate × 2 s per step");
        assert!(all[0] >= 1_000_000 && *all.last().unwrap() < 5_000_000);
        // Evenly spread: no gap much larger than the interval at that rate.
        let widest = all[..200].windows(2).map(|w| w[1] - w[0]).max().unwrap();
        assert!(
            widest <= 10_001,
            "10 ms between sends at 100/s, got {widest}"
        );
    }

    #[test]
    fn events_count_in_the_step_their_message_was_due_in() {
        let recorder = Recorder::new(Instant::now());
        recorder.sent(1_500_000);
        recorder.start(schedule(&[10.0, 20.0]));
        let steps = recorder.schedule().unwrap();
        assert_eq!(steps.step_of(999_999), None, "warm-up");
        assert_eq!(steps.step_of(1_000_000), Some(0));
        assert_eq!(steps.step_of(3_000_000), Some(1));
        assert_eq!(steps.step_of(5_000_000), None, "after the end");
        recorder.sent(500_000);
        recorder.sent(1_500_000);
        recorder.sent(3_500_000);
        recorder.acked(3_500_000);
        recorder.delivered(3_500_000);
        let (zero, one) = (recorder.step(0), recorder.step(1));
        assert_eq!((zero.sent, zero.acked), (1, 0));
        assert_eq!((one.sent, one.acked, one.delivered), (1, 1, 1));
        assert_eq!(one.deliver.count, 1);
        assert_eq!(
            recorder.sent.load(Ordering::Relaxed),
            4,
            "totals count warm-up"
        );
    }

    #[test]
    fn a_step_whose_deliveries_straggle_is_credited_only_its_real_rate() {
        // Ten seconds into the run, the load having started at 1 s in 2-second steps.
        let recorder = Recorder::new(Instant::now() - std::time::Duration::from_secs(10));
        recorder.start(schedule(&[10.0, 20.0]));
        for _ in 0..4 {
            recorder.sent(1_500_000);
            recorder.acked(1_500_000);
            recorder.delivered(1_500_000);
        }
        let step = recorder.step(0);
        // 4 in 2 s would be 2/s; the last came ~9 s after the step began.
        assert!(
            (step.delivered_per_second - 4.0 / 9.0).abs() < 0.01,
            "{step:?}"
        );
        assert!((step.acked_per_second - 4.0 / 9.0).abs() < 0.01, "{step:?}");
        assert!(
            step.deliver.p50_ms > 8000.0,
            "due at 1.5 s, delivered at ~10 s"
        );
        let idle = recorder.step(1);
        assert_eq!((idle.delivered, idle.delivered_per_second), (0, 0.0));
    }

    #[test]
    fn summaries_read_quantiles_in_milliseconds() {
        let mut latencies = histogram();
        for micros in 1..=1000 {
            latencies.record(micros * 100).unwrap();
        }
        let summary = Summary::of("x", &latencies);
        assert_eq!(summary.count, 1000);
        assert!((summary.p50_ms - 50.0).abs() < 0.1, "{summary:?}");
        assert!((summary.p99_ms - 99.0).abs() < 0.1, "{summary:?}");
        assert!((summary.max_ms - 100.0).abs() < 0.1, "{summary:?}");
    }
}
