//! SVG plots of reports (feature `plot`): goodput against offered load, one line per stack;
//! and one run over time (limit, in-flight, latency, rejections).
//!
//! Both plots are built from the simulator's own measures ([`Summary`] and the
//! per-bucket summaries of a [`Report`]), drawn with `plotters`' SVG backend, and either
//! returned as a string ([`LoadPlot::to_svg`]) or written to a file
//! ([`LoadPlot::write_svg`]). Text is laid out with `plotters`' built-in font metrics, so
//! no system font is needed; viewers render it in their default sans-serif font.
//!
//! ```
//! use std::time::Duration;
//! use steadfast_sim::plot::{LoadPlot, TimelinePlot};
//! use steadfast_sim::{BackendConfig, Distribution, Load, Scenario};
//! use tower::ServiceBuilder;
//!
//! let backend = BackendConfig::new(2, Distribution::Constant(Duration::from_millis(20)));
//! let mut runs = Vec::new();
//! for rps in [50.0, 100.0, 200.0] {
//!     let scenario = Scenario::new(format!("{rps}/s"), backend.clone(), Load::poisson(rps))
//!         .with_duration(Duration::from_secs(5));
//!     runs.push(scenario.run_blocking(|backend| {
//!         ServiceBuilder::new().load_shed().concurrency_limit(4).service(backend)
//!     })?);
//! }
//! let svg = LoadPlot::new("goodput against offered load")
//!     .capacity(backend.capacity_rps())
//!     .stack("static limit 4", runs.iter().map(|r| r.summary()))
//!     .to_svg()?;
//! assert!(svg.starts_with("<svg") && svg.contains("static limit 4"));
//!
//! let over_time = TimelinePlot::new("200/s", &runs[2]).to_svg()?;
//! assert!(over_time.contains("accepted p99"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::error::Error;
use std::fmt;
use std::io;
use std::ops::Range;
use std::path::Path;
use std::time::Duration;

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::report::{Report, Summary};

/// The default size of a plot, in pixels: 960 × 600.
pub const DEFAULT_SIZE: (u32, u32) = (960, 600);

/// The smallest size accepted, in pixels: 320 × 200 (smaller leaves no room for the axes).
pub const MIN_SIZE: (u32, u32) = (320, 200);

/// Line colours, in the order stacks and series are added (Okabe and Ito's palette, which
/// stays distinguishable with the common colour-vision deficiencies).
const PALETTE: [RGBColor; 8] = [
    RGBColor(0, 114, 178),
    RGBColor(213, 94, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(230, 159, 0),
    RGBColor(86, 180, 233),
    RGBColor(0, 0, 0),
    RGBColor(240, 228, 66),
];

const GREY: RGBColor = RGBColor(120, 120, 120);

fn colour(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

/// Why a plot could not be made.
#[derive(Debug)]
#[non_exhaustive]
pub enum PlotError {
    /// There is no finite value to plot (no stack, or no run with a value).
    NoData,
    /// The requested size is below [`MIN_SIZE`].
    TooSmall {
        /// The width asked for.
        width: u32,
        /// The height asked for.
        height: u32,
    },
    /// `plotters` failed to draw; the message is its error.
    Draw(String),
    /// Writing the file failed.
    Io(io::Error),
}

impl fmt::Display for PlotError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoData => f.write_str("nothing to plot: no finite value"),
            Self::TooSmall { width, height } => write!(
                f,
                "plot size {width}x{height} is below the minimum {}x{}",
                MIN_SIZE.0, MIN_SIZE.1
            ),
            Self::Draw(msg) => write!(f, "drawing the plot failed: {msg}"),
            Self::Io(e) => write!(f, "writing the plot failed: {e}"),
        }
    }
}

impl Error for PlotError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            Self::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for PlotError {
    fn from(e: io::Error) -> Self {
        Self::Io(e)
    }
}

fn draw_err<E: Error + Send + Sync>(e: DrawingAreaErrorKind<E>) -> PlotError {
    PlotError::Draw(e.to_string())
}

fn check_size((width, height): (u32, u32)) -> Result<(), PlotError> {
    if width < MIN_SIZE.0 || height < MIN_SIZE.1 {
        Err(PlotError::TooSmall { width, height })
    } else {
        Ok(())
    }
}

fn write_file(path: &Path, svg: &str) -> Result<(), PlotError> {
    std::fs::write(path, svg).map_err(PlotError::Io)
}

/// `0 ..= max · 1.08` over the finite values, at least `0..1`.
fn range_from_zero(values: impl Iterator<Item = f64>) -> Range<f64> {
    let max = values.filter(|v| v.is_finite()).fold(0.0_f64, f64::max);
    0.0..if max > 0.0 { max * 1.08 } else { 1.0 }
}

/// Splits `points` into runs of consecutive defined values, so that a line breaks where a
/// value is missing instead of bridging the gap.
fn segments(points: &[(f64, Option<f64>)]) -> Vec<Vec<(f64, f64)>> {
    let mut out: Vec<Vec<(f64, f64)>> = Vec::new();
    let mut current = Vec::new();
    for &(x, y) in points {
        match y.filter(|y| y.is_finite()) {
            Some(y) => current.push((x, y)),
            None if !current.is_empty() => out.push(std::mem::take(&mut current)),
            None => {}
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// One line of a chart: a name, a colour, a style, its points.
struct Line {
    name: String,
    colour: RGBColor,
    dashed: bool,
    markers: bool,
    points: Vec<(f64, Option<f64>)>,
}

/// Draws one panel: a titled chart with axes and the lines, and a legend of the lines that
/// have at least one point.
fn draw_panel(
    area: &DrawingArea<SVGBackend<'_>, Shift>,
    caption: &str,
    x_desc: &str,
    y_desc: &str,
    x_range: Range<f64>,
    lines: &[Line],
    legend: SeriesLabelPosition,
) -> Result<(), PlotError> {
    let y_range = range_from_zero(
        lines
            .iter()
            .flat_map(|l| l.points.iter().filter_map(|p| p.1)),
    );
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(56)
        .build_cartesian_2d(x_range, y_range)
        .map_err(draw_err)?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .light_line_style(WHITE)
        .draw()
        .map_err(draw_err)?;
    let mut any = false;
    for line in lines {
        let style = ShapeStyle::from(&line.colour).stroke_width(2);
        let mut labelled = false;
        for segment in segments(&line.points) {
            let annotation = if line.dashed {
                chart.draw_series(DashedLineSeries::new(segment.clone(), 6, 4, style))
            } else {
                chart.draw_series(LineSeries::new(segment.clone(), style))
            }
            .map_err(draw_err)?;
            if !labelled {
                let colour = line.colour;
                let dashed = line.dashed;
                annotation.label(line.name.as_str()).legend(move |(x, y)| {
                    let style = ShapeStyle::from(&colour).stroke_width(2);
                    let end = if dashed { x + 8 } else { x + 20 };
                    PathElement::new(vec![(x, y), (end, y)], style)
                });
                labelled = true;
                any = true;
            }
            if line.markers {
                chart
                    .draw_series(
                        segment
                            .iter()
                            .map(|&p| Circle::new(p, 3, line.colour.filled())),
                    )
                    .map_err(draw_err)?;
            }
        }
    }
    if any {
        chart
            .configure_series_labels()
            .position(legend)
            .background_style(WHITE.mix(0.85))
            .border_style(GREY)
            .draw()
            .map_err(draw_err)?;
    }
    Ok(())
}

/// Goodput (and throughput) against offered load, one line per stack.
///
/// Each stack contributes one point per [`Summary`] it is given (typically one run per
/// offered load, or the measured window of each run): x is the offered load
/// ([`Summary::offered_rps`], attempts per second), y the goodput
/// ([`Summary::goodput_rps`]) as a solid line with markers, and, unless turned off, the
/// throughput ([`Summary::throughput_rps`], late answers included) as a dashed line of the
/// same colour. Points are sorted by offered load. A grey line marks the capacity when
/// given.
#[derive(Debug, Clone)]
pub struct LoadPlot {
    title: String,
    capacity: Option<f64>,
    throughput: bool,
    size: (u32, u32),
    stacks: Vec<(String, Vec<LoadPoint>)>,
}

/// One run of a stack in a [`LoadPlot`]: offered load, goodput, throughput (per second).
#[derive(Debug, Clone, Copy)]
struct LoadPoint {
    offered: f64,
    goodput: f64,
    throughput: f64,
}

impl LoadPlot {
    /// An empty plot with a title; defaults: no capacity line, throughput shown,
    /// [`DEFAULT_SIZE`].
    pub fn new(title: impl Into<String>) -> Self {
        Self {
            title: title.into(),
            capacity: None,
            throughput: true,
            size: DEFAULT_SIZE,
            stacks: Vec::new(),
        }
    }

    /// Draws a horizontal line at `rps`, the backend's capacity (ignored unless finite and
    /// positive).
    #[must_use]
    pub fn capacity(mut self, rps: f64) -> Self {
        self.capacity = (rps.is_finite() && rps > 0.0).then_some(rps);
        self
    }

    /// Whether to draw each stack's throughput as a dashed line (default `true`).
    #[must_use]
    pub fn throughput(mut self, show: bool) -> Self {
        self.throughput = show;
        self
    }

    /// The size in pixels (default [`DEFAULT_SIZE`]; at least [`MIN_SIZE`], checked when
    /// drawing).
    #[must_use]
    pub fn size(mut self, width: u32, height: u32) -> Self {
        self.size = (width, height);
        self
    }

    /// Adds a stack: its name (shown in the legend) and its runs.
    #[must_use]
    pub fn stack<'a>(
        mut self,
        name: impl Into<String>,
        runs: impl IntoIterator<Item = &'a Summary>,
    ) -> Self {
        let mut points: Vec<LoadPoint> = runs
            .into_iter()
            .map(|s| LoadPoint {
                offered: s.offered_rps(),
                goodput: s.goodput_rps(),
                throughput: s.throughput_rps(),
            })
            .filter(|p| p.offered.is_finite())
            .collect();
        points.sort_by(|a, b| a.offered.total_cmp(&b.offered));
        self.stacks.push((name.into(), points));
        self
    }

    /// Draws the plot and returns the SVG document.
    ///
    /// # Errors
    ///
    /// [`PlotError::NoData`] without any point, [`PlotError::TooSmall`] for a size below
    /// [`MIN_SIZE`], [`PlotError::Draw`] if `plotters` fails.
    pub fn to_svg(&self) -> Result<String, PlotError> {
        check_size(self.size)?;
        if self.stacks.iter().all(|(_, p)| p.is_empty()) {
            return Err(PlotError::NoData);
        }
        let x_range = range_from_zero(
            self.stacks
                .iter()
                .flat_map(|(_, p)| p.iter().map(|p| p.offered)),
        );
        let mut lines = Vec::new();
        for (i, (name, points)) in self.stacks.iter().enumerate() {
            lines.push(Line {
                name: format!("{name}: goodput"),
                colour: colour(i),
                dashed: false,
                markers: true,
                points: points
                    .iter()
                    .map(|p| (p.offered, Some(p.goodput)))
                    .collect(),
            });
            if self.throughput {
                lines.push(Line {
                    name: format!("{name}: throughput"),
                    colour: colour(i),
                    dashed: true,
                    markers: false,
                    points: points
                        .iter()
                        .map(|p| (p.offered, Some(p.throughput)))
                        .collect(),
                });
            }
        }
        if let Some(capacity) = self.capacity {
            lines.push(Line {
                name: "capacity".to_owned(),
                colour: GREY,
                dashed: true,
                markers: false,
                points: vec![
                    (x_range.start, Some(capacity)),
                    (x_range.end, Some(capacity)),
                ],
            });
        }
        let mut svg = String::new();
        {
            let root = SVGBackend::with_string(&mut svg, self.size).into_drawing_area();
            root.fill(&WHITE).map_err(draw_err)?;
            draw_panel(
                &root,
                &self.title,
                "offered load (attempts/s)",
                "answers/s",
                x_range,
                &lines,
                // Goodput sits near the capacity at the top and collapse at the bottom.
                SeriesLabelPosition::MiddleRight,
            )?;
            root.present().map_err(draw_err)?;
        }
        Ok(svg)
    }

    /// Draws the plot and writes it to `path` (creating or replacing the file).
    ///
    /// # Errors
    ///
    /// As [`to_svg`](Self::to_svg), and [`PlotError::Io`] if the file cannot be written.
    pub fn write_svg(&self, path: impl AsRef<Path>) -> Result<(), PlotError> {
        write_file(path.as_ref(), &self.to_svg()?)
    }
}

/// One bucket's values for [`TimelinePlot`].
#[derive(Debug, Clone, Copy)]
struct Point {
    /// The bucket's middle, in seconds from the start of the run.
    t: f64,
    limit: Option<f64>,
    stack_in_flight: f64,
    backend_in_flight: f64,
    workers: Option<f64>,
    p50_ms: Option<f64>,
    p99_ms: Option<f64>,
    offered: f64,
    goodput: f64,
    rejected: f64,
}

fn ms(d: Option<Duration>) -> Option<f64> {
    d.map(|d| d.as_secs_f64() * 1e3)
}

/// One run over time, bucket by bucket, in three panels sharing the time axis:
///
/// 1. **concurrency**: the stack's limit (the mean of the
///    [limit probe](crate::Simulation::limit_probe)'s samples, when there is one), the
///    attempts in the stack and in the backend (time-weighted means), and the backend's
///    workers;
/// 2. **latency**: the median and 99th percentile of accepted (`Ok`) answers, in
///    milliseconds (buckets without an answer leave a gap);
/// 3. **rates**: offered attempts, goodput and rejections per second.
#[derive(Debug, Clone)]
pub struct TimelinePlot {
    title: String,
    size: (u32, u32),
    points: Vec<Point>,
}

impl TimelinePlot {
    /// The plot of `report`'s buckets, with a title; default size 960 × 900 (three
    /// panels).
    pub fn new(title: impl Into<String>, report: &Report) -> Self {
        let points = report
            .buckets()
            .iter()
            .map(|b| {
                let workers = b.backend.workers.mean;
                Point {
                    t: (b.start.as_secs_f64() + b.end.as_secs_f64()) / 2.0,
                    limit: b.limit.as_ref().map(|l| l.mean),
                    stack_in_flight: b.stack_in_flight.mean,
                    backend_in_flight: b.backend.in_flight.mean,
                    // An unlimited backend reports usize::MAX workers: not a level to draw.
                    workers: (workers < 1e9).then_some(workers),
                    p50_ms: ms(b.latency.p50),
                    p99_ms: ms(b.latency.p99),
                    offered: b.offered_rps(),
                    goodput: b.goodput_rps(),
                    rejected: b.reject_rps(),
                }
            })
            .collect();
        Self {
            title: title.into(),
            size: (DEFAULT_SIZE.0, 900),
            points,
        }
    }

    /// The size in pixels (default 960 × 900; at least [`MIN_SIZE`], checked when
    /// drawing).
    #[must_use]
    pub fn size(mut self, width: u32, height: u32) -> Self {
        self.size = (width, height);
        self
    }

    fn line(&self, i: usize, name: &str, value: impl Fn(&Point) -> Option<f64>) -> Line {
        Line {
            name: name.to_owned(),
            colour: colour(i),
            dashed: false,
            markers: false,
            points: self.points.iter().map(|p| (p.t, value(p))).collect(),
        }
    }

    /// Draws the plot and returns the SVG document.
    ///
    /// # Errors
    ///
    /// [`PlotError::NoData`] for a report without buckets, [`PlotError::TooSmall`] for a
    /// size below [`MIN_SIZE`], [`PlotError::Draw`] if `plotters` fails.
    pub fn to_svg(&self) -> Result<String, PlotError> {
        check_size(self.size)?;
        let (Some(first), Some(last)) = (self.points.first(), self.points.last()) else {
            return Err(PlotError::NoData);
        };
        let half = if self.points.len() > 1 {
            (self.points[1].t - first.t) / 2.0
        } else {
            first.t
        };
        let x_range = (first.t - half).max(0.0)..last.t + half;
        let concurrency = [
            self.line(0, "limit (probe)", |p| p.limit),
            self.line(1, "in the stack", |p| Some(p.stack_in_flight)),
            self.line(2, "in the backend", |p| Some(p.backend_in_flight)),
            Line {
                dashed: true,
                ..self.line(6, "workers", |p| p.workers)
            },
        ];
        let latency = [
            self.line(0, "accepted p50", |p| p.p50_ms),
            self.line(1, "accepted p99", |p| p.p99_ms),
        ];
        let rates = [
            Line {
                dashed: true,
                ..self.line(6, "offered", |p| Some(p.offered))
            },
            self.line(2, "goodput", |p| Some(p.goodput)),
            self.line(1, "rejected", |p| Some(p.rejected)),
        ];
        let mut svg = String::new();
        {
            let root = SVGBackend::with_string(&mut svg, self.size).into_drawing_area();
            root.fill(&WHITE).map_err(draw_err)?;
            let root = root
                .titled(&self.title, ("sans-serif", 22))
                .map_err(draw_err)?;
            let panels = root.split_evenly((3, 1));
            let time = "time (s)";
            draw_panel(
                &panels[0],
                "concurrency",
                time,
                "requests",
                x_range.clone(),
                &concurrency,
                SeriesLabelPosition::UpperRight,
            )?;
            draw_panel(
                &panels[1],
                "latency of accepted requests",
                time,
                "ms",
                x_range.clone(),
                &latency,
                SeriesLabelPosition::UpperRight,
            )?;
            draw_panel(
                &panels[2],
                "rates",
                time,
                "per second",
                x_range,
                &rates,
                SeriesLabelPosition::UpperRight,
            )?;
            root.present().map_err(draw_err)?;
        }
        Ok(svg)
    }

    /// Draws the plot and writes it to `path` (creating or replacing the file).
    ///
    /// # Errors
    ///
    /// As [`to_svg`](Self::to_svg), and [`PlotError::Io`] if the file cannot be written.
    pub fn write_svg(&self, path: impl AsRef<Path>) -> Result<(), PlotError> {
        write_file(path.as_ref(), &self.to_svg()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{BackendConfig, Distribution, Load, Scenario};

    fn report(rps: f64) -> Report {
        Scenario::new(
            format!("{rps}/s"),
            BackendConfig::new(2, Distribution::Constant(Duration::from_millis(20))),
            Load::poisson(rps),
        )
        .with_duration(Duration::from_secs(4))
        .with_seed(3)
        .run_blocking(|backend| {
            tower::ServiceBuilder::new()
                .load_shed()
                .concurrency_limit(2)
                .service(backend)
        })
        .expect("the scenario runs")
    }

    /// A fresh directory under the system's temporary directory.
    fn temp_dir(name: &str) -> std::path::PathBuf {
        let dir =
            std::env::temp_dir().join(format!("steadfast-sim-plot-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temporary directory");
        dir
    }

    #[test]
    fn load_plot_writes_an_svg_file_with_every_stack() {
        let runs: Vec<Report> = [50.0, 100.0, 300.0].into_iter().map(report).collect();
        let dir = temp_dir("load");
        let path = dir.join("goodput.svg");
        LoadPlot::new("goodput against offered load")
            .capacity(100.0)
            .stack("shed + limit 2", runs.iter().map(Report::summary))
            .stack(
                "only the first run",
                runs.iter().take(1).map(Report::summary),
            )
            .write_svg(&path)
            .expect("the plot is written");
        let svg = std::fs::read_to_string(&path).expect("the file exists");
        assert!(svg.starts_with("<svg"), "{}", &svg[..svg.len().min(80)]);
        assert!(svg.trim_end().ends_with("</svg>"));
        for label in [
            "goodput against offered load",
            "shed + limit 2: goodput",
            "shed + limit 2: throughput",
            "only the first run: goodput",
            "capacity",
            "offered load (attempts/s)",
        ] {
            assert!(svg.contains(label), "missing {label:?}");
        }
        // One marker per run of each stack.
        assert_eq!(svg.matches("<circle").count(), 3 + 1);
        std::fs::remove_dir_all(dir).expect("cleanup");
    }

    #[test]
    fn timeline_plot_draws_the_limit_latency_and_rejections() {
        let overloaded = report(300.0);
        let dir = temp_dir("timeline");
        let path = dir.join("timeline.svg");
        TimelinePlot::new("3x capacity", &overloaded)
            .write_svg(&path)
            .expect("the plot is written");
        let svg = std::fs::read_to_string(&path).expect("the file exists");
        assert!(svg.starts_with("<svg"));
        for label in [
            "3x capacity",
            "in the stack",
            "in the backend",
            "workers",
            "accepted p50",
            "accepted p99",
            "goodput",
            "rejected",
        ] {
            assert!(svg.contains(label), "missing {label:?}");
        }
        // Without a probe there is no limit line, so no legend entry for it.
        assert!(!svg.contains("limit (probe)"));
        std::fs::remove_dir_all(dir).expect("cleanup");
    }

    #[test]
    fn bad_input_is_a_typed_error() {
        assert!(matches!(
            LoadPlot::new("empty").to_svg(),
            Err(PlotError::NoData)
        ));
        assert!(matches!(
            LoadPlot::new("no runs").stack("a", []).to_svg(),
            Err(PlotError::NoData)
        ));
        let r = report(50.0);
        assert!(matches!(
            LoadPlot::new("tiny")
                .stack("a", [r.summary()])
                .size(10, 10)
                .to_svg(),
            Err(PlotError::TooSmall {
                width: 10,
                height: 10
            })
        ));
        let missing = std::env::temp_dir()
            .join("steadfast-sim-plot-no-such-dir")
            .join("x")
            .join("plot.svg");
        let err = TimelinePlot::new("t", &r).write_svg(&missing).unwrap_err();
        assert!(matches!(err, PlotError::Io(_)), "{err}");
        assert!(err.source().is_some());
    }

    #[test]
    fn segments_break_at_missing_values() {
        let points = [
            (0.0, Some(1.0)),
            (1.0, None),
            (2.0, Some(2.0)),
            (3.0, Some(f64::NAN)),
            (4.0, Some(3.0)),
            (5.0, Some(4.0)),
        ];
        assert_eq!(
            segments(&points),
            vec![
                vec![(0.0, 1.0)],
                vec![(2.0, 2.0)],
                vec![(4.0, 3.0), (5.0, 4.0)]
            ]
        );
    }
}
