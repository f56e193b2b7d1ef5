//! What the lab prints and writes: tables, targets, SVG plots, CSV.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use steadfast_sim::plot::{LoadPlot, PlotError, TimelinePlot};
use steadfast_sim::{Metric, Summary};

use crate::{CAPACITY_RPS, LOADS, Lab, Retries, Stack, ms};

/// One row of a table: a measured window and what to compare it with.
#[derive(Debug, Clone)]
pub struct Row {
    /// The first column: the stack or the clients.
    pub label: String,
    /// The load or phase.
    pub load: String,
    /// The capacity during the window, requests per second.
    pub capacity: f64,
    /// The measured window.
    pub summary: Summary,
}

impl Row {
    /// Goodput ÷ capacity.
    pub fn goodput_share(&self) -> f64 {
        self.summary.goodput_rps() / self.capacity
    }

    /// The share of a class's requests answered within the deadline.
    pub fn class_goodput(&self, class: u8) -> Option<f64> {
        self.summary.get(Metric::ClassGoodputRatio(class))
    }

    /// The share of the rejections that fell on `class`.
    pub fn class_share_of_rejections(&self, class: u8) -> Option<f64> {
        let total: u64 = self.summary.classes.iter().map(|c| c.rejected).sum();
        let of = self.summary.classes.get(usize::from(class))?.rejected;
        (total > 0).then(|| of as f64 / total as f64)
    }
}

fn cost_text() -> String {
    format!("{:.2} ms", crate::REJECTION_COST.as_secs_f64() * 1e3)
}

fn pct(v: Option<f64>) -> String {
    v.filter(|v| v.is_finite())
        .map_or_else(|| "-".to_owned(), |v| format!("{:.1}%", 100.0 * v))
}

fn num(v: f64, decimals: usize) -> String {
    if v.is_finite() {
        format!("{v:.decimals$}")
    } else {
        "-".to_owned()
    }
}

/// A markdown table of rows, `first` naming the first column: goodput ÷ capacity, accepted
/// p50 / p99, p99 ÷ unloaded p99, rejection p99, wasted work, per-class goodput, mean
/// limit.
pub fn table(first: &str, rows: &[Row], unloaded_p99: f64) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| {first} | load | goodput/cap | p50 ms | p99 ms | p99/unloaded | reject p99 ms | wasted | critical ok | sheddable ok | limit |"
    );
    let _ = writeln!(out, "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|");
    for r in rows {
        let s = &r.summary;
        let p99 = ms(s.latency.p99);
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.label,
            r.load,
            pct(Some(r.goodput_share())),
            num(ms(s.latency.p50), 0),
            num(p99, 0),
            num(p99 / unloaded_p99, 2),
            num(ms(s.reject_latency.p99), 0),
            pct(s.get(Metric::WastedRatio)),
            pct(r.class_goodput(0)),
            pct(r.class_goodput(1)),
            s.limit
                .as_ref()
                .map_or_else(|| "-".to_owned(), |l| format!("{:.1}", l.mean)),
        );
    }
    out
}

/// One target of the issue, checked against the numbers measured.
#[derive(Debug, Clone)]
pub struct Target {
    /// What is claimed.
    pub claim: String,
    /// The number measured, as printed.
    pub measured: String,
    /// Whether the claim holds.
    pub pass: bool,
}

impl Target {
    fn new(claim: impl Into<String>, measured: String, pass: bool) -> Self {
        Self {
            claim: claim.into(),
            measured,
            pass,
        }
    }
}

impl Lab {
    /// The load sweep's rows (measured windows), by stack then load.
    pub fn sweep_rows(&self) -> Vec<Row> {
        self.sweep
            .iter()
            .map(|(stack, x, o)| Row {
                label: stack.name().to_owned(),
                load: format!("{x}x"),
                capacity: CAPACITY_RPS,
                summary: self.measured(&o.report),
            })
            .collect()
    }

    /// The capacity step's rows: three phases per stack.
    pub fn step_rows(&self) -> Vec<Row> {
        let mut rows = Vec::new();
        for (stack, o) in &self.step {
            for (phase, capacity, summary) in self.step_phases(&o.report) {
                rows.push(Row {
                    label: stack.name().to_owned(),
                    load: format!("{phase}: {:.0}x", 2.0 * CAPACITY_RPS / capacity),
                    capacity,
                    summary,
                });
            }
        }
        rows
    }

    /// The retry storm's rows, labelled by clients and rejection cost.
    pub fn storm_rows(&self) -> Vec<Row> {
        self.storm
            .iter()
            .map(|(retries, costly, o)| {
                let amplification = o
                    .retry
                    .map(|(attempts, _)| {
                        format!(
                            ", {:.2} attempts/request",
                            attempts as f64 / o.report.summary().requests.max(1) as f64
                        )
                    })
                    .unwrap_or_default();
                let summary = self.measured(&o.report);
                let workers = summary.backend.workers.mean;
                Row {
                    label: format!(
                        "{} ({}{amplification}, {workers:.2} workers left)",
                        retries.name(),
                        if *costly {
                            format!("rejection costs {}", cost_text())
                        } else {
                            "free rejections".to_owned()
                        },
                    ),
                    load: "4x".to_owned(),
                    capacity: CAPACITY_RPS,
                    summary,
                }
            })
            .collect()
    }

    /// The targets that this lab's selection can check.
    pub fn targets(&self) -> Vec<Target> {
        let mut targets = Vec::new();
        let unloaded = self.unloaded_p99_ms();
        let row = |stack, x| {
            self.sweep_at(stack, x).map(|o| Row {
                label: String::new(),
                load: String::new(),
                capacity: CAPACITY_RPS,
                summary: self.measured(&o.report),
            })
        };
        if let Some(r) = row(Stack::Steadfast, 10.0) {
            let g = r.goodput_share();
            targets.push(Target::new(
                "steadfast: goodput at 10x >= 90% of capacity",
                pct(Some(g)),
                g >= 0.9,
            ));
        }
        if let Some(r) = row(Stack::Unprotected, 10.0) {
            let g = r.goodput_share();
            targets.push(Target::new(
                "unprotected: goodput at 10x collapses (< 10% of capacity)",
                pct(Some(g)),
                g < 0.1,
            ));
        }
        for x in LOADS.into_iter().filter(|&x| x >= 2.0) {
            if let Some(r) = row(Stack::Steadfast, x) {
                let ratio = ms(r.summary.latency.p99) / unloaded;
                targets.push(Target::new(
                    format!(
                        "steadfast: accepted p99 at {x}x <= 3x unloaded p99 ({unloaded:.0} ms)"
                    ),
                    format!("{ratio:.2}x"),
                    ratio <= 3.0,
                ));
            }
        }
        if let Some(r) = row(Stack::Steadfast, 4.0) {
            let critical = r.class_goodput(0);
            targets.push(Target::new(
                "steadfast: critical requests keep their goodput at 4x (>= 90% answered in time)",
                pct(critical),
                critical.is_some_and(|c| c >= 0.9),
            ));
            let share = r.class_share_of_rejections(1);
            targets.push(Target::new(
                "steadfast: sheddable requests absorb the rejections at 4x (>= 90% of them)",
                pct(share),
                share.is_some_and(|s| s >= 0.9),
            ));
        }
        let storm = |retries| {
            self.storm_of(retries, true)
                .map(|o| self.measured(&o.report).goodput_rps() / CAPACITY_RPS)
        };
        if let Some(g) = storm(Retries::Budget) {
            targets.push(Target::new(
                format!("retry storm at 4x (rejections cost {}): 3 attempts through TpsBudget keep goodput >= 90%", cost_text()),
                pct(Some(g)),
                g >= 0.9,
            ));
        }
        if let Some(g) = storm(Retries::NoBudget) {
            targets.push(Target::new(
                format!("retry storm at 4x (rejections cost {}): 3 attempts without a budget do not (< 90%)", cost_text()),
                pct(Some(g)),
                g < 0.9,
            ));
        }
        targets
    }

    /// Everything the lab prints: the three tables and the targets.
    pub fn render(&self) -> String {
        let t = self.timing();
        let unloaded = self.unloaded_p99_ms();
        let mut out = String::new();
        let _ = writeln!(
            out,
            "Backend: 2 workers x lognormal 20 ms (capacity {CAPACITY_RPS:.0}/s); traffic 20% critical, 80% sheddable; client deadline 1 s; seed {}.",
            crate::SEED
        );
        let _ = writeln!(
            out,
            "Unloaded p99 (bare backend at 5/s for {} s): {unloaded:.0} ms.\n",
            t.unloaded
        );
        if !self.sweep.is_empty() {
            let _ = writeln!(
                out,
                "## Load sweep: {} s at 0.5x, then {} s at the load; measured over the last {} s\n",
                t.warm,
                t.load,
                t.load - t.settle
            );
            out.push_str(&table("stack", &self.sweep_rows(), unloaded));
            out.push('\n');
        }
        if !self.step.is_empty() {
            let _ = writeln!(
                out,
                "## Capacity step: offered 200/s; 2 workers, then 1 (capacity halves), then 2 again, {} s each; each phase measured over its second half\n",
                t.step_phase
            );
            out.push_str(&table("stack", &self.step_rows(), unloaded));
            out.push('\n');
        }
        if !self.storm.is_empty() {
            let _ = writeln!(
                out,
                "## Retry storm: the steadfast server (shed + limit) at 4x; clients retry rejections (full-jitter backoff, 1 s deadline); measured as the sweep\n"
            );
            out.push_str(&table("clients", &self.storm_rows(), unloaded));
            out.push('\n');
        }
        let targets = self.targets();
        if !targets.is_empty() {
            let _ = writeln!(out, "## Targets\n");
            let _ = writeln!(out, "| target | measured | result |\n|---|--:|---|");
            for target in &targets {
                let _ = writeln!(
                    out,
                    "| {} | {} | {} |",
                    target.claim,
                    target.measured,
                    if target.pass { "PASS" } else { "FAIL" }
                );
            }
        }
        out
    }

    /// Writes the SVG plots into `dir` (which must exist) and returns their paths:
    /// goodput against offered load for every stack; each stack over time at 10x and
    /// through the capacity step; the costly retry storms over time.
    ///
    /// # Errors
    ///
    /// The first [`PlotError`].
    pub fn write_plots(&self, dir: &Path) -> Result<Vec<PathBuf>, PlotError> {
        let mut written = Vec::new();
        let mut write = |name: String, svg: Result<String, PlotError>| -> Result<(), PlotError> {
            let path = dir.join(name);
            std::fs::write(&path, svg?)?;
            written.push(path);
            Ok(())
        };
        if !self.sweep.is_empty() {
            let mut plot = LoadPlot::new("Goodput against offered load (Netflix harness, 100/s)")
                .capacity(CAPACITY_RPS);
            let windows: Vec<(Stack, Vec<Summary>)> = Stack::ALL
                .iter()
                .map(|&stack| {
                    let runs = self
                        .sweep
                        .iter()
                        .filter(|(s, _, _)| *s == stack)
                        .map(|(_, _, o)| self.measured(&o.report))
                        .collect();
                    (stack, runs)
                })
                .filter(|(_, runs): &(Stack, Vec<Summary>)| !runs.is_empty())
                .collect();
            for (stack, runs) in &windows {
                plot = plot.stack(stack.name(), runs);
            }
            write("goodput.svg".to_owned(), plot.to_svg())?;
        }
        for (stack, x, o) in &self.sweep {
            if *x == 10.0 {
                let title = format!("{} at 10x (from 0.5x)", stack.name());
                write(
                    format!("timeline-10x-{}.svg", stack.slug()),
                    TimelinePlot::new(title, &o.report).to_svg(),
                )?;
            }
        }
        for (stack, o) in &self.step {
            let title = format!("{}: capacity halves, then recovers", stack.name());
            write(
                format!("step-{}.svg", stack.slug()),
                TimelinePlot::new(title, &o.report).to_svg(),
            )?;
        }
        for (retries, costly, o) in &self.storm {
            if *costly && *retries != Retries::None {
                let slug = if *retries == Retries::Budget {
                    "budget"
                } else {
                    "no-budget"
                };
                let title = format!("retry storm at 4x: {}", retries.name());
                write(
                    format!("storm-{slug}.svg"),
                    TimelinePlot::new(title, &o.report).to_svg(),
                )?;
            }
        }
        Ok(written)
    }

    /// Writes each run's per-bucket CSV ([`Report::to_csv`](steadfast_sim::Report::to_csv))
    /// into `dir` (which must exist) and returns the paths.
    ///
    /// # Errors
    ///
    /// The first I/O error.
    pub fn write_csv(&self, dir: &Path) -> std::io::Result<Vec<PathBuf>> {
        let mut runs = vec![("unloaded".to_owned(), &self.unloaded)];
        for (stack, x, o) in &self.sweep {
            runs.push((format!("sweep-{}-{x}x", stack.slug()), &o.report));
        }
        for (stack, o) in &self.step {
            runs.push((format!("step-{}", stack.slug()), &o.report));
        }
        for (retries, costly, o) in &self.storm {
            let name = format!(
                "storm-{}-{}",
                match retries {
                    Retries::None => "none",
                    Retries::Budget => "budget",
                    Retries::NoBudget => "no-budget",
                },
                if *costly { "costly" } else { "free" }
            );
            runs.push((name, &o.report));
        }
        let mut written = Vec::new();
        for (name, report) in runs {
            let path = dir.join(format!("{name}.csv"));
            std::fs::write(&path, report.to_csv())?;
            written.push(path);
        }
        Ok(written)
    }
}
