//! `bench-plot`: PNG plots of `cluster-bench --json` results.
//!
//! It reads files of JSON lines ([`Report`]s; any other line, such as the
//! human-readable result line, is skipped), groups the reports into series
//! by everything that describes a workload except its client count (system,
//! storage, transport, payload, reads), and draws two pictures:
//! - `throughput.png`: operations per second against concurrent clients, one
//!   line per series;
//! - `latency.png`: one panel per client count, each with every series'
//!   latency CDF (from [`Report::latency_cdf`]).
//!
//! Text needs a TrueType font, read at run time (`--font`, by default
//! Debian's DejaVu Sans from the package `fonts-dejavu-core`), so building
//! the plots needs no system font library.

use crate::load::Report;
use plotters::prelude::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Where Debian's `fonts-dejavu-core` puts DejaVu Sans (`scripts/setup.sh`
/// installs it).
pub const DEFAULT_FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";

/// Why no plot was drawn.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    /// An input or the font could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The font file is not a TrueType or OpenType font.
    #[error("{0}: not a font plotters can use")]
    Font(PathBuf),
    /// No input line was a report.
    #[error("no cluster-bench --json report in the input")]
    NoReports,
    /// Drawing or encoding the picture failed.
    #[error("drawing {path}: {reason}")]
    Draw {
        /// The picture.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

/// Reports parsed from JSON lines; lines that are not reports are skipped.
pub fn parse_reports(text: &str) -> Vec<Report> {
    text.lines().filter_map(|line| serde_json::from_str::<Report>(line.trim()).ok()).collect()
}

/// The reports of one series, by client count (a later report of the same
/// count replaces an earlier one).
pub type Series = BTreeMap<usize, Report>;

/// The series name a report belongs to: what it measured, but for its
/// client count.
pub fn series_name(report: &Report) -> String {
    let w = &report.workload;
    let mut name = w.system.clone();
    if !w.storage.is_empty() || !w.transport.is_empty() {
        name.push_str(&format!(" {}/{}", w.storage, w.transport));
    }
    if w.system != "echo_baseline" {
        name.push_str(&format!(" {} B", w.payload));
    }
    if w.read_percent > 0 {
        name.push_str(&format!(" {} % reads", w.read_percent));
    }
    name
}

/// Groups reports into series, named by [`series_name`].
pub fn group(reports: Vec<Report>) -> BTreeMap<String, Series> {
    let mut series: BTreeMap<String, Series> = BTreeMap::new();
    for report in reports {
        series.entry(series_name(&report)).or_default().insert(report.workload.clients, report);
    }
    series
}

/// Reads `inputs`, draws both pictures into `out_dir`, and returns their paths.
pub fn plot_files(inputs: &[PathBuf], out_dir: &Path, font: &Path) -> Result<Vec<PathBuf>, PlotError> {
    let mut reports = Vec::new();
    for path in inputs {
        let text =
            std::fs::read_to_string(path).map_err(|source| PlotError::Read { path: path.clone(), source })?;
        reports.extend(parse_reports(&text));
    }
    if reports.is_empty() {
        return Err(PlotError::NoReports);
    }
    load_font(font)?;
    let series = group(reports);
    let throughput = out_dir.join("throughput.png");
    draw_throughput(&series, &throughput)
        .map_err(|reason| PlotError::Draw { path: throughput.clone(), reason })?;
    let latency = out_dir.join("latency.png");
    draw_latency(&series, &latency).map_err(|reason| PlotError::Draw { path: latency.clone(), reason })?;
    Ok(vec![throughput, latency])
}

/// Registers the font as plotters' "sans-serif" (once per process: the
/// bytes must live as long as the program).
fn load_font(path: &Path) -> Result<(), PlotError> {
    let bytes = std::fs::read(path).map_err(|source| PlotError::Read { path: path.to_path_buf(), source })?;
    let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
    plotters::style::register_font("sans-serif", FontStyle::Normal, bytes)
        .map_err(|_| PlotError::Font(path.to_path_buf()))
}

fn color(i: usize) -> RGBColor {
    const COLORS: [RGBColor; 8] = [
        RGBColor(31, 119, 180),
        RGBColor(255, 127, 14),
        RGBColor(44, 160, 44),
        RGBColor(214, 39, 40),
        RGBColor(148, 103, 189),
        RGBColor(140, 86, 75),
        RGBColor(227, 119, 194),
        RGBColor(127, 127, 127),
    ];
    COLORS[i % COLORS.len()]
}

/// The smallest power of two at or above `n` (at least 2), for a log axis.
fn axis_top(n: usize) -> f64 {
    n.max(2).next_power_of_two() as f64
}

fn draw_throughput(series: &BTreeMap<String, Series>, path: &Path) -> Result<(), String> {
    let most_clients = series.values().flat_map(|s| s.keys().copied()).max().unwrap_or(1);
    let top = series.values().flat_map(|s| s.values().map(|r| r.ops_per_sec)).fold(0.0, f64::max);
    let root = BitMapBackend::new(path, (1100, 650)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let mut chart = ChartBuilder::on(&root)
        .caption("Throughput against concurrent clients", ("sans-serif", 26))
        .margin(16)
        .x_label_area_size(50)
        .y_label_area_size(90)
        .build_cartesian_2d((1.0..axis_top(most_clients)).log_scale(), 0.0..top * 1.1)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_desc("concurrent clients (log scale)")
        .y_desc("operations per second")
        .y_label_formatter(&|v| format!("{:.0} k", v / 1000.0))
        .x_label_formatter(&|v| format!("{v:.0}"))
        .label_style(("sans-serif", 16))
        .draw()
        .map_err(|e| e.to_string())?;
    for (i, (name, reports)) in series.iter().enumerate() {
        let c = color(i);
        let points: Vec<(f64, f64)> =
            reports.values().map(|r| (r.workload.clients as f64, r.ops_per_sec)).collect();
        chart
            .draw_series(LineSeries::new(points.clone(), c.stroke_width(2)))
            .map_err(|e| e.to_string())?
            .label(name.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], c.stroke_width(3)));
        chart
            .draw_series(points.into_iter().map(|p| Circle::new(p, 4, c.filled())))
            .map_err(|e| e.to_string())?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .label_font(("sans-serif", 16))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(|e| e.to_string())?;
    root.present().map_err(|e| e.to_string())
}

fn draw_latency(series: &BTreeMap<String, Series>, path: &Path) -> Result<(), String> {
    let counts: Vec<usize> = {
        let mut counts: Vec<usize> = series.values().flat_map(|s| s.keys().copied()).collect();
        counts.sort_unstable();
        counts.dedup();
        counts
    };
    let columns = counts.len().clamp(1, 2);
    let rows = counts.len().div_ceil(columns).max(1);
    let root = BitMapBackend::new(path, (700 * columns as u32, 480 * rows as u32)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let panels = root.split_evenly((rows, columns));
    for (panel, &clients) in panels.iter().zip(&counts) {
        let in_panel: Vec<(usize, &String, &Report)> = series
            .iter()
            .enumerate()
            .filter_map(|(i, (name, s))| s.get(&clients).map(|r| (i, name, r)))
            .filter(|(_, _, r)| !r.latency_cdf.is_empty())
            .collect();
        let (low, high) = in_panel
            .iter()
            .flat_map(|(_, _, r)| r.latency_cdf.iter().map(|p| p[1]))
            .fold((f64::MAX, 0.0f64), |(lo, hi), us| (lo.min(us), hi.max(us)));
        let (low, high) = if in_panel.is_empty() { (1.0, 10.0) } else { ((low * 0.8).max(0.1), high * 1.25) };
        let mut chart = ChartBuilder::on(panel)
            .caption(
                format!("Latency CDF, {clients} client{}", if clients == 1 { "" } else { "s" }),
                ("sans-serif", 22),
            )
            .margin(14)
            .x_label_area_size(45)
            .y_label_area_size(60)
            .build_cartesian_2d((low..high).log_scale(), 0.0..1.0)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_desc("latency, microseconds (log scale)")
            .y_desc("fraction of operations")
            .x_label_formatter(&|v| format!("{v:.0}"))
            .label_style(("sans-serif", 14))
            .draw()
            .map_err(|e| e.to_string())?;
        for (i, name, report) in in_panel {
            let c = color(i);
            let points: Vec<(f64, f64)> = report.latency_cdf.iter().map(|p| (p[1].max(low), p[0])).collect();
            chart
                .draw_series(LineSeries::new(points, c.stroke_width(2)))
                .map_err(|e| e.to_string())?
                .label(name.as_str())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], c.stroke_width(3)));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .label_font(("sans-serif", 14))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(|e| e.to_string())?;
    }
    root.present().map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::Workload;

    fn report(system: &str, clients: usize, ops: f64) -> Report {
        Report {
            workload: Workload {
                system: system.into(),
                members: 3,
                storage: "mem".into(),
                transport: "tcp".into(),
                clients,
                payload: 64,
                read_percent: 0,
            },
            operations: 10,
            errors: 0,
            seconds: 1.0,
            ops_per_sec: ops,
            p50_us: 10.0,
            p99_us: 20.0,
            p999_us: 30.0,
            max_us: 40.0,
            latency_cdf: vec![[0.0, 5.0], [0.5, 10.0], [1.0, 40.0]],
            group_commit: None,
        }
    }

    #[test]
    fn only_report_lines_are_read_and_old_lines_without_a_cdf_still_parse() {
        let mut old = serde_json::to_value(report("inproc", 1, 5.0)).unwrap();
        old.as_object_mut().unwrap().remove("latency_cdf");
        let text = format!(
            "inproc members=3\nresult: 5 ops/s\n{}\n{}\nnot json\n",
            serde_json::to_string(&report("inproc", 64, 9.0)).unwrap(),
            old
        );
        let reports = parse_reports(&text);
        assert_eq!(reports.len(), 2);
        assert_eq!(reports[0].workload.clients, 64);
        assert!(reports[1].latency_cdf.is_empty());
    }

    #[test]
    fn series_are_workloads_but_for_their_client_count() {
        let series =
            group(vec![report("inproc", 1, 1.0), report("inproc", 64, 2.0), report("etcd", 64, 3.0)]);
        assert_eq!(series.len(), 2);
        assert_eq!(series["inproc mem/tcp 64 B"].keys().copied().collect::<Vec<_>>(), vec![1, 64]);
        assert_eq!(series["etcd mem/tcp 64 B"][&64].ops_per_sec, 3.0);
    }

    #[test]
    fn no_reports_is_an_error_not_an_empty_picture() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in.jsonl");
        std::fs::write(&input, "result: nothing\n").unwrap();
        let error = plot_files(&[input], dir.path(), Path::new("/nonexistent.ttf")).unwrap_err();
        assert!(matches!(error, PlotError::NoReports), "{error}");
    }

    #[test]
    fn both_pictures_are_drawn_as_png() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in.jsonl");
        let lines: Vec<String> =
            [report("inproc", 1, 1.0e5), report("inproc", 64, 4.0e5), report("etcd", 64, 1.0e4)]
                .iter()
                .map(|r| serde_json::to_string(r).unwrap())
                .collect();
        std::fs::write(&input, lines.join("\n")).unwrap();
        let pictures = plot_files(&[input], dir.path(), Path::new(DEFAULT_FONT)).unwrap();
        assert_eq!(pictures.len(), 2);
        for picture in pictures {
            let bytes = std::fs::read(&picture).unwrap();
            assert!(bytes.starts_with(b"\x89PNG"), "{} is not a PNG", picture.display());
            assert!(bytes.len() > 10_000, "{} is too small to hold the plot", picture.display());
        }
    }

    #[test]
    fn a_missing_font_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in.jsonl");
        std::fs::write(&input, serde_json::to_string(&report("inproc", 1, 1.0)).unwrap()).unwrap();
        let error = plot_files(&[input], dir.path(), &dir.path().join("no-font.ttf")).unwrap_err();
        assert!(error.to_string().contains("no-font.ttf"), "{error}");
    }
}
