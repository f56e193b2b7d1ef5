//! What a run measured: per-bucket and whole-run summaries, CSV, envelope checks.

use std::collections::BTreeMap;
use std::error::Error;
use std::fmt::{self, Write as _};
use std::time::Duration;

use hdrhistogram::Histogram;

use crate::scenario::Scenario;
use crate::stats::{self, GaugeBucket, RawBucket};

/// Latency statistics from an HDR histogram of whole milliseconds (three significant
/// figures: exact up to 2,047 ms); every field but `count` is `None` when nothing was
/// recorded.
///
/// Observed latencies are whole milliseconds: tokio's timer ticks once per millisecond.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct LatencySummary {
    /// Values recorded.
    pub count: u64,
    /// The mean.
    pub mean: Option<Duration>,
    /// The median.
    pub p50: Option<Duration>,
    /// The 90th percentile.
    pub p90: Option<Duration>,
    /// The 99th percentile.
    pub p99: Option<Duration>,
    /// The 99.9th percentile.
    pub p999: Option<Duration>,
    /// The largest value.
    pub max: Option<Duration>,
}

impl LatencySummary {
    fn from_histogram(h: &Histogram<u64>) -> Self {
        let count = h.len();
        if count == 0 {
            return Self::default();
        }
        let q = |q: f64| Some(Duration::from_millis(h.value_at_quantile(q)));
        Self {
            count,
            mean: Some(Duration::from_secs_f64(h.mean().max(0.0) / 1e3)),
            p50: q(0.5),
            p90: q(0.9),
            p99: q(0.99),
            p999: q(0.999),
            max: Some(Duration::from_millis(h.max())),
        }
    }
}

/// A time-weighted level (a queue length, an in-flight count) over a window.
#[derive(Debug, Clone, PartialEq, Default)]
#[non_exhaustive]
pub struct GaugeSummary {
    /// The time-weighted mean.
    pub mean: f64,
    /// The largest value, instantaneous peaks included.
    pub max: u64,
    /// The value held for the longest time (ties: the smallest).
    pub mode: u64,
}

impl GaugeSummary {
    fn aggregate<'a>(parts: impl Iterator<Item = &'a GaugeBucket>, seconds: f64) -> Self {
        let mut area = 0.0;
        let mut max = 0;
        let mut levels: BTreeMap<u64, f64> = BTreeMap::new();
        for g in parts {
            area += g.area;
            max = max.max(g.max);
            for (&v, &t) in &g.levels {
                *levels.entry(v).or_default() += t;
            }
        }
        let mut mode = (0, f64::NEG_INFINITY);
        for (v, t) in levels {
            if t > mode.1 {
                mode = (v, t);
            }
        }
        Self {
            mean: if seconds > 0.0 { area / seconds } else { 0.0 },
            max,
            mode: mode.0,
        }
    }
}

/// The stack's limit as sampled by the [limit probe](crate::Simulation::limit_probe).
#[derive(Debug, Clone, PartialEq, Default)]
#[non_exhaustive]
pub struct LimitSummary {
    /// Samples taken (probes that returned `Some`).
    pub samples: u64,
    /// The mean of the samples.
    pub mean: f64,
    /// The smallest sample.
    pub min: f64,
    /// The largest sample.
    pub max: f64,
    /// The most frequent sample, rounded to an integer (ties: the smallest).
    pub mode: f64,
    /// The last sample.
    pub last: f64,
}

/// Counts for one request class.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct ClassSummary {
    /// The class.
    pub class: u8,
    /// New requests.
    pub requests: u64,
    /// Attempts, retries included.
    pub attempts: u64,
    /// Answers within the deadline.
    pub goodput: u64,
    /// Rejections.
    pub rejected: u64,
    /// Client timeouts.
    pub timeouts: u64,
}

/// What the backend did.
#[derive(Debug, Clone, PartialEq, Default)]
#[non_exhaustive]
pub struct BackendSummary {
    /// Requests that started service.
    pub started: u64,
    /// Requests served to the end.
    pub completed: u64,
    /// Requests served but finished after their deadline: wasted work.
    pub wasted: u64,
    /// Worker time spent on those.
    pub wasted_work: Duration,
    /// Worker time spent on all completed requests.
    pub busy_time: Duration,
    /// Requests dropped unserved (expired or cancelled, when the backend is set to).
    pub skipped: u64,
    /// Requests in the backend (queued plus in service).
    pub in_flight: GaugeSummary,
    /// Requests in the queue.
    pub queue: GaugeSummary,
    /// Requests in service.
    pub busy: GaugeSummary,
    /// Workers (`usize::MAX` when unlimited).
    pub workers: GaugeSummary,
}

/// Everything measured over a window of a run: the whole run, one bucket, or a range of
/// buckets ([`Report::window`]).
///
/// Counts are of events that happened in the window: a request is counted where it
/// arrived, an answer where it came back.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Summary {
    /// The scenario's name.
    pub scenario: String,
    /// The scenario's seed.
    pub seed: u64,
    /// The window's start, as an offset from the start of the run.
    pub start: Duration,
    /// The window's end.
    pub end: Duration,
    /// New logical requests.
    pub requests: u64,
    /// Attempts sent, retries included: the offered load.
    pub attempts: u64,
    /// Retries sent.
    pub retries: u64,
    /// `Ok` answers (goodput plus late).
    pub ok: u64,
    /// `Ok` answers within the deadline.
    pub goodput: u64,
    /// `Ok` answers after the deadline (clients that wait).
    pub late: u64,
    /// Attempts the client abandoned at the deadline.
    pub timeouts: u64,
    /// Overload rejections by the stack.
    pub rejected: u64,
    /// Other errors.
    pub errors: u64,
    /// Latency of `Ok` answers, from the client's send.
    pub latency: LatencySummary,
    /// Latency of rejections, from the client's send.
    pub reject_latency: LatencySummary,
    /// Attempts handed to the stack and not yet resolved.
    pub stack_in_flight: GaugeSummary,
    /// Attempts sent by clients and not yet taken by the stack (its backpressure).
    pub waiting: GaugeSummary,
    /// The backend.
    pub backend: BackendSummary,
    /// The stack's limit, when a probe was given and returned values.
    pub limit: Option<LimitSummary>,
    /// Per-class counts, indexed by class.
    pub classes: Vec<ClassSummary>,
}

fn ratio(num: f64, den: f64) -> Option<f64> {
    (den > 0.0).then(|| num / den)
}

fn secs(d: Option<Duration>) -> Option<f64> {
    d.map(|d| d.as_secs_f64())
}

impl Summary {
    pub(crate) fn aggregate(scenario: &str, seed: u64, raws: &[RawBucket]) -> Self {
        let start = raws.first().map_or(Duration::ZERO, |r| r.start);
        let end = raws.last().map_or(Duration::ZERO, |r| r.end);
        let seconds = (end.saturating_sub(start)).as_secs_f64();
        let mut latency = stats::histogram();
        let mut reject_latency = stats::histogram();
        let classes = raws.first().map_or(0, |r| r.client.classes.len());
        let mut s = Self {
            scenario: scenario.to_owned(),
            seed,
            start,
            end,
            requests: 0,
            attempts: 0,
            retries: 0,
            ok: 0,
            goodput: 0,
            late: 0,
            timeouts: 0,
            rejected: 0,
            errors: 0,
            latency: LatencySummary::default(),
            reject_latency: LatencySummary::default(),
            stack_in_flight: GaugeSummary::aggregate(
                raws.iter().map(|r| &r.stack_in_flight),
                seconds,
            ),
            waiting: GaugeSummary::aggregate(raws.iter().map(|r| &r.waiting), seconds),
            backend: BackendSummary {
                in_flight: GaugeSummary::aggregate(
                    raws.iter().map(|r| &r.backend_in_flight),
                    seconds,
                ),
                queue: GaugeSummary::aggregate(raws.iter().map(|r| &r.queue), seconds),
                busy: GaugeSummary::aggregate(raws.iter().map(|r| &r.busy), seconds),
                workers: GaugeSummary::aggregate(raws.iter().map(|r| &r.workers), seconds),
                ..BackendSummary::default()
            },
            limit: None,
            classes: (0..classes)
                .map(|c| ClassSummary {
                    class: u8::try_from(c).unwrap_or(u8::MAX),
                    ..ClassSummary::default()
                })
                .collect(),
        };
        let mut limit = stats::LimitBucket::default();
        for r in raws {
            let c = &r.client;
            s.requests += c.requests;
            s.attempts += c.attempts;
            s.retries += c.retries;
            s.ok += c.ok;
            s.goodput += c.goodput;
            s.late += c.late;
            s.timeouts += c.timeouts;
            s.rejected += c.rejected;
            s.errors += c.errors;
            // Auto-resizing histograms always accept each other's values.
            latency.add(&c.latency).expect("auto-resizing histogram");
            reject_latency
                .add(&c.reject_latency)
                .expect("auto-resizing histogram");
            for (sum, part) in s.classes.iter_mut().zip(&c.classes) {
                sum.requests += part.requests;
                sum.attempts += part.attempts;
                sum.goodput += part.goodput;
                sum.rejected += part.rejected;
                sum.timeouts += part.timeouts;
            }
            let l = &c.limit;
            if l.samples > 0 {
                if limit.samples == 0 {
                    limit.min = l.min;
                    limit.max = l.max;
                } else {
                    limit.min = limit.min.min(l.min);
                    limit.max = limit.max.max(l.max);
                }
                limit.samples += l.samples;
                limit.sum += l.sum;
                limit.last = l.last;
                for (&v, &n) in &l.rounded {
                    *limit.rounded.entry(v).or_default() += n;
                }
            }
            let b = &r.backend;
            s.backend.started += b.started;
            s.backend.completed += b.completed;
            s.backend.wasted += b.wasted;
            s.backend.skipped += b.skipped;
            s.backend.wasted_work += b.wasted_work;
            s.backend.busy_time += b.busy_time;
        }
        s.latency = LatencySummary::from_histogram(&latency);
        s.reject_latency = LatencySummary::from_histogram(&reject_latency);
        if limit.samples > 0 {
            let mut mode = (0i64, 0u64);
            for (&v, &n) in &limit.rounded {
                if n > mode.1 {
                    mode = (v, n);
                }
            }
            s.limit = Some(LimitSummary {
                samples: limit.samples,
                mean: limit.sum / limit.samples as f64,
                min: limit.min,
                max: limit.max,
                mode: mode.0 as f64,
                last: limit.last,
            });
        }
        s
    }

    /// The window's length in seconds.
    pub fn seconds(&self) -> f64 {
        self.end.saturating_sub(self.start).as_secs_f64()
    }

    fn per_second(&self, n: u64) -> f64 {
        ratio(n as f64, self.seconds()).unwrap_or(0.0)
    }

    /// Attempts per second, retries included: the offered load.
    pub fn offered_rps(&self) -> f64 {
        self.per_second(self.attempts)
    }

    /// New requests per second.
    pub fn request_rps(&self) -> f64 {
        self.per_second(self.requests)
    }

    /// `Ok` answers per second, late ones included.
    pub fn throughput_rps(&self) -> f64 {
        self.per_second(self.ok)
    }

    /// `Ok` answers within the deadline per second.
    pub fn goodput_rps(&self) -> f64 {
        self.per_second(self.goodput)
    }

    /// Rejections per second.
    pub fn reject_rps(&self) -> f64 {
        self.per_second(self.rejected)
    }

    /// The value of `metric` over this window, or `None` when it is undefined (no latency
    /// recorded, no limit probe, a zero denominator).
    pub fn get(&self, metric: Metric) -> Option<f64> {
        let b = &self.backend;
        let limit = self.limit.as_ref();
        let class = |c: u8| self.classes.get(usize::from(c));
        match metric {
            Metric::OfferedRps => Some(self.offered_rps()),
            Metric::RequestRps => Some(self.request_rps()),
            Metric::ThroughputRps => Some(self.throughput_rps()),
            Metric::GoodputRps => Some(self.goodput_rps()),
            Metric::RejectRps => Some(self.reject_rps()),
            Metric::GoodputRatio => ratio(self.goodput as f64, self.requests as f64),
            Metric::RejectRatio => ratio(self.rejected as f64, self.attempts as f64),
            Metric::TimeoutRatio => ratio(self.timeouts as f64, self.attempts as f64),
            Metric::ErrorRatio => ratio(self.errors as f64, self.attempts as f64),
            Metric::LateRatio => ratio(self.late as f64, self.ok as f64),
            Metric::Amplification => ratio(self.attempts as f64, self.requests as f64),
            Metric::LatencyMean => secs(self.latency.mean),
            Metric::LatencyP50 => secs(self.latency.p50),
            Metric::LatencyP90 => secs(self.latency.p90),
            Metric::LatencyP99 => secs(self.latency.p99),
            Metric::LatencyP999 => secs(self.latency.p999),
            Metric::LatencyMax => secs(self.latency.max),
            Metric::RejectLatencyP99 => secs(self.reject_latency.p99),
            Metric::RejectLatencyMax => secs(self.reject_latency.max),
            Metric::WastedWork => Some(b.wasted_work.as_secs_f64()),
            Metric::WastedRatio => ratio(b.wasted_work.as_secs_f64(), b.busy_time.as_secs_f64()),
            Metric::Utilisation => ratio(b.busy.mean, b.workers.mean),
            Metric::BackendThroughputRps => Some(self.per_second(b.completed)),
            Metric::BackendInFlightMean => Some(b.in_flight.mean),
            Metric::BackendInFlightMax => Some(b.in_flight.max as f64),
            Metric::BackendInFlightMode => Some(b.in_flight.mode as f64),
            Metric::QueueMean => Some(b.queue.mean),
            Metric::QueueMax => Some(b.queue.max as f64),
            Metric::StackInFlightMean => Some(self.stack_in_flight.mean),
            Metric::StackInFlightMax => Some(self.stack_in_flight.max as f64),
            Metric::StackInFlightMode => Some(self.stack_in_flight.mode as f64),
            Metric::WaitingMean => Some(self.waiting.mean),
            Metric::LimitMean => limit.map(|l| l.mean),
            Metric::LimitMin => limit.map(|l| l.min),
            Metric::LimitMax => limit.map(|l| l.max),
            Metric::LimitMode => limit.map(|l| l.mode),
            Metric::LimitLast => limit.map(|l| l.last),
            Metric::ClassGoodputRps(c) => class(c).map(|s| self.per_second(s.goodput)),
            Metric::ClassGoodputRatio(c) => {
                class(c).and_then(|s| ratio(s.goodput as f64, s.requests as f64))
            }
            Metric::ClassRejectRatio(c) => {
                class(c).and_then(|s| ratio(s.rejected as f64, s.attempts as f64))
            }
        }
    }

    /// Checks every envelope against this window; the error lists each one violated.
    pub fn check(&self, envelopes: &[Envelope]) -> Result<(), EnvelopeViolation> {
        let failures: Vec<EnvelopeFailure> = envelopes
            .iter()
            .filter_map(|&envelope| {
                let value = self.get(envelope.metric);
                (!value.is_some_and(|v| envelope.contains(v)))
                    .then_some(EnvelopeFailure { envelope, value })
            })
            .collect();
        if failures.is_empty() {
            Ok(())
        } else {
            Err(EnvelopeViolation {
                scenario: self.scenario.clone(),
                seed: self.seed,
                start: self.start,
                end: self.end,
                checked: envelopes.len(),
                failures,
            })
        }
    }
}

fn fmt_opt_ms(d: Option<Duration>) -> String {
    d.map_or_else(
        || "-".to_owned(),
        |d| format!("{:.1}ms", d.as_secs_f64() * 1e3),
    )
}

impl fmt::Display for Summary {
    /// A short human-readable digest.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} (seed {}, {:?}..{:?}): offered {:.1}/s ({} requests, {} attempts), goodput {:.1}/s, throughput {:.1}/s",
            self.scenario,
            self.seed,
            self.start,
            self.end,
            self.offered_rps(),
            self.requests,
            self.attempts,
            self.goodput_rps(),
            self.throughput_rps(),
        )?;
        writeln!(
            f,
            "  rejected {}, timeouts {}, late {}, errors {}; latency p50 {} p99 {} p99.9 {}; reject p99 {}",
            self.rejected,
            self.timeouts,
            self.late,
            self.errors,
            fmt_opt_ms(self.latency.p50),
            fmt_opt_ms(self.latency.p99),
            fmt_opt_ms(self.latency.p999),
            fmt_opt_ms(self.reject_latency.p99),
        )?;
        write!(
            f,
            "  backend: completed {}, wasted {} ({:.1}s of work), in-flight mean {:.1} max {}, queue mean {:.1} max {}; stack in-flight mean {:.1}",
            self.backend.completed,
            self.backend.wasted,
            self.backend.wasted_work.as_secs_f64(),
            self.backend.in_flight.mean,
            self.backend.in_flight.max,
            self.backend.queue.mean,
            self.backend.queue.max,
            self.stack_in_flight.mean,
        )?;
        if let Some(l) = &self.limit {
            write!(
                f,
                "; limit mean {:.1} min {:.1} max {:.1}",
                l.mean, l.min, l.max
            )?;
        }
        Ok(())
    }
}

/// The result of a run: one [`Summary`] for the whole run and one per bucket.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    summary: Summary,
    buckets: Vec<Summary>,
    raws: Vec<RawBucket>,
    bucket: Duration,
    unfinished: u64,
}

impl Report {
    pub(crate) fn new(scenario: &Scenario, raws: Vec<RawBucket>, unfinished: u64) -> Self {
        let name = scenario.name.as_str();
        let summary = Summary::aggregate(name, scenario.seed, &raws);
        let buckets = raws
            .iter()
            .map(|r| Summary::aggregate(name, scenario.seed, std::slice::from_ref(r)))
            .collect();
        Self {
            summary,
            buckets,
            raws,
            bucket: scenario.bucket,
            unfinished,
        }
    }

    /// The whole run.
    pub fn summary(&self) -> &Summary {
        &self.summary
    }

    /// One summary per bucket, in time order.
    pub fn buckets(&self) -> &[Summary] {
        &self.buckets
    }

    /// The bucket width.
    pub fn bucket_width(&self) -> Duration {
        self.bucket
    }

    /// Attempts still waiting for the stack or in flight when the run ended.
    pub fn unfinished(&self) -> u64 {
        self.unfinished
    }

    /// The buckets that start in `[from, to)`, aggregated (percentiles are merged from
    /// the buckets' histograms, not averaged). Use it to skip a warm-up or to look at one
    /// phase of a schedule.
    pub fn window(&self, from: Duration, to: Duration) -> Summary {
        let first = self.raws.partition_point(|r| r.start < from);
        let last = self.raws.partition_point(|r| r.start < to).max(first);
        Summary::aggregate(
            &self.summary.scenario,
            self.summary.seed,
            &self.raws[first..last],
        )
    }

    /// Checks the envelopes against the whole run.
    pub fn check(&self, envelopes: &[Envelope]) -> Result<(), EnvelopeViolation> {
        self.summary.check(envelopes)
    }

    /// Checks the envelopes against [`window(from, to)`](Self::window).
    pub fn check_window(
        &self,
        from: Duration,
        to: Duration,
        envelopes: &[Envelope],
    ) -> Result<(), EnvelopeViolation> {
        self.window(from, to).check(envelopes)
    }

    /// The per-bucket table as CSV, one header line and one line per bucket. Times are
    /// seconds (`start_s`), latencies milliseconds (`_ms`), rates per second (`_rps`);
    /// undefined values (no latency recorded, no limit probe) are empty.
    pub fn to_csv(&self) -> String {
        let mut out = String::from(
            "start_s,end_s,requests,attempts,retries,offered_rps,throughput_rps,goodput_rps,\
             rejected,timeouts,late,errors,latency_p50_ms,latency_p99_ms,latency_p999_ms,\
             reject_latency_p99_ms,backend_completed,wasted,wasted_work_s,utilisation,\
             backend_in_flight_mean,backend_in_flight_max,queue_mean,queue_max,\
             stack_in_flight_mean,stack_in_flight_max,waiting_mean,workers,\
             limit_mean,limit_min,limit_max\n",
        );
        let ms = |d: Option<Duration>| {
            d.map_or_else(String::new, |d| format!("{:.3}", d.as_secs_f64() * 1e3))
        };
        let opt = |v: Option<f64>| v.map_or_else(String::new, |v| format!("{v:.3}"));
        for s in &self.buckets {
            let b = &s.backend;
            let limit = s.limit.as_ref();
            // Writing to a String cannot fail.
            let _ = writeln!(
                out,
                "{:.3},{:.3},{},{},{},{:.3},{:.3},{:.3},{},{},{},{},{},{},{},{},{},{},{:.6},{},{:.3},{},{:.3},{},{:.3},{},{:.3},{:.3},{},{},{}",
                s.start.as_secs_f64(),
                s.end.as_secs_f64(),
                s.requests,
                s.attempts,
                s.retries,
                s.offered_rps(),
                s.throughput_rps(),
                s.goodput_rps(),
                s.rejected,
                s.timeouts,
                s.late,
                s.errors,
                ms(s.latency.p50),
                ms(s.latency.p99),
                ms(s.latency.p999),
                ms(s.reject_latency.p99),
                b.completed,
                b.wasted,
                b.wasted_work.as_secs_f64(),
                opt(s.get(Metric::Utilisation)),
                b.in_flight.mean,
                b.in_flight.max,
                b.queue.mean,
                b.queue.max,
                s.stack_in_flight.mean,
                s.stack_in_flight.max,
                s.waiting.mean,
                b.workers.mean,
                opt(limit.map(|l| l.mean)),
                opt(limit.map(|l| l.min)),
                opt(limit.map(|l| l.max)),
            );
        }
        out
    }
}

/// A number computed from a [`Summary`], for [`Envelope`]s. Rates are per second,
/// latencies and work in seconds, ratios in `[0, 1]` (amplification excepted).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Metric {
    /// Attempts per second, retries included.
    OfferedRps,
    /// New requests per second.
    RequestRps,
    /// `Ok` answers per second.
    ThroughputRps,
    /// `Ok` answers within the deadline per second.
    GoodputRps,
    /// Rejections per second.
    RejectRps,
    /// Goodput ÷ requests.
    GoodputRatio,
    /// Rejections ÷ attempts.
    RejectRatio,
    /// Timeouts ÷ attempts.
    TimeoutRatio,
    /// Other errors ÷ attempts.
    ErrorRatio,
    /// Late answers ÷ `Ok` answers.
    LateRatio,
    /// Attempts ÷ requests: how much retries amplify the load.
    Amplification,
    /// Mean latency of `Ok` answers.
    LatencyMean,
    /// Median latency of `Ok` answers.
    LatencyP50,
    /// 90th percentile latency of `Ok` answers.
    LatencyP90,
    /// 99th percentile latency of `Ok` answers.
    LatencyP99,
    /// 99.9th percentile latency of `Ok` answers.
    LatencyP999,
    /// Largest latency of an `Ok` answer.
    LatencyMax,
    /// 99th percentile latency of rejections.
    RejectLatencyP99,
    /// Largest latency of a rejection.
    RejectLatencyMax,
    /// Worker seconds spent on requests finished after their deadline.
    WastedWork,
    /// Wasted work ÷ all work.
    WastedRatio,
    /// Mean busy workers ÷ mean workers.
    Utilisation,
    /// Requests the backend completed per second.
    BackendThroughputRps,
    /// Time-weighted mean of requests in the backend.
    BackendInFlightMean,
    /// Most requests in the backend at once.
    BackendInFlightMax,
    /// Most common number of requests in the backend (time-weighted).
    BackendInFlightMode,
    /// Time-weighted mean backend queue length.
    QueueMean,
    /// Longest backend queue.
    QueueMax,
    /// Time-weighted mean of attempts in the stack.
    StackInFlightMean,
    /// Most attempts in the stack at once.
    StackInFlightMax,
    /// Most common number of attempts in the stack (time-weighted).
    StackInFlightMode,
    /// Time-weighted mean of attempts waiting for the stack to be ready.
    WaitingMean,
    /// Mean sampled limit.
    LimitMean,
    /// Smallest sampled limit.
    LimitMin,
    /// Largest sampled limit.
    LimitMax,
    /// Most frequent sampled limit, rounded.
    LimitMode,
    /// Last sampled limit.
    LimitLast,
    /// Goodput per second of one class.
    ClassGoodputRps(u8),
    /// Goodput ÷ requests of one class.
    ClassGoodputRatio(u8),
    /// Rejections ÷ attempts of one class.
    ClassRejectRatio(u8),
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Self::OfferedRps => "offered_rps",
            Self::RequestRps => "request_rps",
            Self::ThroughputRps => "throughput_rps",
            Self::GoodputRps => "goodput_rps",
            Self::RejectRps => "reject_rps",
            Self::GoodputRatio => "goodput_ratio",
            Self::RejectRatio => "reject_ratio",
            Self::TimeoutRatio => "timeout_ratio",
            Self::ErrorRatio => "error_ratio",
            Self::LateRatio => "late_ratio",
            Self::Amplification => "amplification",
            Self::LatencyMean => "latency_mean_s",
            Self::LatencyP50 => "latency_p50_s",
            Self::LatencyP90 => "latency_p90_s",
            Self::LatencyP99 => "latency_p99_s",
            Self::LatencyP999 => "latency_p999_s",
            Self::LatencyMax => "latency_max_s",
            Self::RejectLatencyP99 => "reject_latency_p99_s",
            Self::RejectLatencyMax => "reject_latency_max_s",
            Self::WastedWork => "wasted_work_s",
            Self::WastedRatio => "wasted_ratio",
            Self::Utilisation => "utilisation",
            Self::BackendThroughputRps => "backend_throughput_rps",
            Self::BackendInFlightMean => "backend_in_flight_mean",
            Self::BackendInFlightMax => "backend_in_flight_max",
            Self::BackendInFlightMode => "backend_in_flight_mode",
            Self::QueueMean => "queue_mean",
            Self::QueueMax => "queue_max",
            Self::StackInFlightMean => "stack_in_flight_mean",
            Self::StackInFlightMax => "stack_in_flight_max",
            Self::StackInFlightMode => "stack_in_flight_mode",
            Self::WaitingMean => "waiting_mean",
            Self::LimitMean => "limit_mean",
            Self::LimitMin => "limit_min",
            Self::LimitMax => "limit_max",
            Self::LimitMode => "limit_mode",
            Self::LimitLast => "limit_last",
            Self::ClassGoodputRps(c) => return write!(f, "class{c}_goodput_rps"),
            Self::ClassGoodputRatio(c) => return write!(f, "class{c}_goodput_ratio"),
            Self::ClassRejectRatio(c) => return write!(f, "class{c}_reject_ratio"),
        };
        f.write_str(name)
    }
}

/// A behavioural envelope: `metric` must lie in `[lo, hi]` (both inclusive), as in Vector's
/// adaptive-concurrency test suite.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Envelope {
    /// What is measured.
    pub metric: Metric,
    /// The smallest acceptable value.
    pub lo: f64,
    /// The largest acceptable value.
    pub hi: f64,
}

impl Envelope {
    /// `metric` in `[lo, hi]`.
    pub const fn new(metric: Metric, lo: f64, hi: f64) -> Self {
        Self { metric, lo, hi }
    }

    /// `metric ≥ lo`.
    pub const fn at_least(metric: Metric, lo: f64) -> Self {
        Self::new(metric, lo, f64::INFINITY)
    }

    /// `metric ≤ hi`.
    pub const fn at_most(metric: Metric, hi: f64) -> Self {
        Self::new(metric, f64::NEG_INFINITY, hi)
    }

    /// Whether `value` is inside (NaN never is).
    pub fn contains(&self, value: f64) -> bool {
        self.lo <= value && value <= self.hi
    }
}

impl fmt::Display for Envelope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} in [{}, {}]", self.metric, self.lo, self.hi)
    }
}

/// One violated envelope and the value found (`None` when the metric was undefined).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct EnvelopeFailure {
    /// The envelope.
    pub envelope: Envelope,
    /// The value measured.
    pub value: Option<f64>,
}

/// Envelopes a run fell outside of; its `Display` names the scenario, seed and window
/// and lists every failure with the value found.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct EnvelopeViolation {
    /// The scenario's name.
    pub scenario: String,
    /// Its seed.
    pub seed: u64,
    /// The window's start.
    pub start: Duration,
    /// The window's end.
    pub end: Duration,
    /// How many envelopes were checked.
    pub checked: usize,
    /// The ones violated.
    pub failures: Vec<EnvelopeFailure>,
}

impl fmt::Display for EnvelopeViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "scenario `{}` (seed {}, window {:?}..{:?}): {} of {} envelopes violated",
            self.scenario,
            self.seed,
            self.start,
            self.end,
            self.failures.len(),
            self.checked
        )?;
        for failure in &self.failures {
            let e = &failure.envelope;
            match failure.value {
                Some(v) => write!(
                    f,
                    "\n  {} = {v:.6}, expected [{}, {}]",
                    e.metric, e.lo, e.hi
                )?,
                None => write!(
                    f,
                    "\n  {} has no value, expected [{}, {}]",
                    e.metric, e.lo, e.hi
                )?,
            }
        }
        Ok(())
    }
}

impl Error for EnvelopeViolation {}
