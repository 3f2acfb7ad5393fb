//! `timeline.png`: every operation of a run as a point, by time and
//! latency, with the faults as shaded bands (TESTING.md shows one and
//! says how to read it).
//!
//! One lane per kind of operation (get, lease get, put, delete, cas, txn;
//! the final reads go in the get lane), each with its own log-scale
//! latency axis from 100 µs to 5 s; x is the time since the run began. A
//! point's colour is its outcome: green `ok`, orange `fail`, black
//! `unknown`. A fault is a band over every lane from its start to its
//! heal, coloured by family: red for kills, yellow for pauses, blue for
//! partitions, grey for flaky links, violet for anything else; its name is
//! written above it.
//!
//! The text is drawn from a tiny built-in pixel font (capitals, digits
//! and `-`), so the picture needs no font files or font libraries to
//! build or draw: `plotters` is used only for its bitmap and PNG encoder.

use crate::history::{Kind, Record, Status};
use plotters::prelude::*;
use std::path::Path;

/// One fault's band: its name and when it started and healed (µs since
/// the run began).
#[derive(Debug, Clone)]
pub struct Band {
    /// The fault's kind, as `faults.jsonl` names it.
    pub name: String,
    /// When it began.
    pub start_us: u64,
    /// When it was healed.
    pub end_us: u64,
}

const WIDTH: u32 = 1400;
const LEFT: i32 = 90;
const RIGHT: i32 = 16;
const TOP: i32 = 44;
const BOTTOM: i32 = 30;
const LANE: i32 = 96;
const GAP: i32 = 6;

/// The lanes, top to bottom, and the kinds each holds.
const LANES: [(&str, &[Kind]); 6] = [
    ("GET", &[Kind::Get, Kind::FinalGet]),
    ("LEASE", &[Kind::LeaseGet]),
    ("PUT", &[Kind::Put]),
    ("DELETE", &[Kind::Delete]),
    ("CAS", &[Kind::Cas]),
    ("TXN", &[Kind::Txn]),
];

/// Latency axis: 100 µs to 5 s, log scale.
const MIN_LOG: f64 = 2.0;
const MAX_LOG: f64 = 6.7;

/// The picture's size in pixels.
pub fn size() -> (u32, u32) {
    let lanes = LANES.len() as i32;
    (WIDTH, (TOP + lanes * LANE + (lanes - 1) * GAP + BOTTOM) as u32)
}

/// The colour of a fault band (light: points stay readable on it).
fn band_colour(name: &str) -> RGBColor {
    if name.contains("kill") {
        RGBColor(250, 200, 200)
    } else if name.contains("pause") {
        RGBColor(250, 238, 170)
    } else if ["isolate", "split", "one-way", "bridge"].iter().any(|p| name.contains(p)) {
        RGBColor(196, 214, 250)
    } else if name.contains("flaky") {
        RGBColor(220, 220, 220)
    } else {
        RGBColor(226, 206, 246)
    }
}

fn outcome_colour(status: Status) -> RGBColor {
    match status {
        Status::Ok => RGBColor(20, 150, 60),
        Status::Fail => RGBColor(240, 120, 0),
        Status::Unknown => RGBColor(0, 0, 0),
    }
}

/// Writes the timeline of `records` and `faults` over `span_us` to `path`.
pub fn draw(path: &Path, records: &[Record], faults: &[Band]) -> Result<(), String> {
    let span_us = records
        .iter()
        .map(|r| r.complete_us)
        .chain(faults.iter().map(|f| f.end_us))
        .max()
        .unwrap_or(1)
        .max(1);
    let root = BitMapBackend::new(path, size()).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let plot_width = WIDTH as i32 - LEFT - RIGHT;
    let x_of = |us: u64| LEFT + ((us as f64 / span_us as f64) * plot_width as f64) as i32;
    let draw = |element: Rectangle<(i32, i32)>| root.draw(&element).map_err(|e| e.to_string());
    let bottom = size().1 as i32 - BOTTOM;
    // Fault bands, and their names above them (staggered in two rows so
    // that neighbours do not overwrite each other).
    for (i, fault) in faults.iter().enumerate() {
        let (x0, x1) = (x_of(fault.start_us), x_of(fault.end_us).max(x_of(fault.start_us) + 1));
        draw(Rectangle::new([(x0, TOP), (x1, bottom)], band_colour(&fault.name).filled()))?;
        let y = if i % 2 == 0 { 6 } else { 22 };
        text(&root, x0, y, &fault.name.to_uppercase(), &RGBColor(60, 60, 60))?;
    }
    for (lane, (name, kinds)) in LANES.iter().enumerate() {
        let top = TOP + lane as i32 * (LANE + GAP);
        let y_of = |latency_us: u64| {
            let log = (latency_us.max(1) as f64).log10().clamp(MIN_LOG, MAX_LOG);
            top + LANE - 1 - ((log - MIN_LOG) / (MAX_LOG - MIN_LOG) * (LANE - 2) as f64) as i32
        };
        root.draw(&Rectangle::new([(LEFT, top), (WIDTH as i32 - RIGHT, top + LANE)], BLACK.stroke_width(1)))
            .map_err(|e| e.to_string())?;
        text(&root, 4, top + 4, name, &BLACK)?;
        // Latency grid: 1 ms, 10 ms, 100 ms, 1 s.
        for (label, us) in [("1MS", 1_000), ("10MS", 10_000), ("100MS", 100_000), ("1S", 1_000_000)] {
            let y = y_of(us);
            root.draw(&PathElement::new(vec![(LEFT, y), (WIDTH as i32 - RIGHT, y)], RGBColor(190, 190, 190)))
                .map_err(|e| e.to_string())?;
            text(&root, LEFT - 6 - 8 * label.len() as i32, y - 5, label, &RGBColor(90, 90, 90))?;
        }
        // Unknown and failed last, so that the rare ones stay visible.
        for status in [Status::Ok, Status::Fail, Status::Unknown] {
            let colour = outcome_colour(status);
            for record in records.iter().filter(|r| r.status == status && kinds.contains(&r.kind)) {
                let (x, y) = (x_of(record.invoke_us), y_of(record.complete_us - record.invoke_us));
                let size = if status == Status::Ok { 1 } else { 2 };
                draw(Rectangle::new([(x - size, y - size), (x + size, y + size)], colour.filled()))?;
            }
        }
    }
    // Time axis: a tick and a label every so many seconds.
    let seconds = span_us / 1_000_000;
    let step =
        [1, 2, 5, 10, 30, 60, 300, 600, 1800, 3600].into_iter().find(|s| seconds / s <= 15).unwrap_or(7200);
    for s in (0..=seconds).step_by(step as usize) {
        let x = x_of(s * 1_000_000);
        draw(Rectangle::new([(x, bottom), (x, bottom + 5)], BLACK.filled()))?;
        text(&root, x - 4, bottom + 9, &format!("{s}S"), &BLACK)?;
    }
    root.present().map_err(|e| e.to_string())
}

/// Draws `text` (capitals, digits, `-`, `.`, space) with its top left at
/// `(x, y)`, 2 pixels to a font pixel: 8 pixels a character, 10 high.
fn text<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    x: i32,
    y: i32,
    text: &str,
    colour: &RGBColor,
) -> Result<(), String> {
    for (i, c) in text.chars().enumerate() {
        let rows = glyph(c);
        for (row, bits) in rows.iter().enumerate() {
            for (col, bit) in bits.bytes().enumerate() {
                if bit == b'#' {
                    let (px, py) = (x + 8 * i as i32 + 2 * col as i32, y + 2 * row as i32);
                    area.draw(&Rectangle::new([(px, py), (px + 1, py + 1)], colour.filled()))
                        .map_err(|e| e.to_string())?;
                }
            }
        }
    }
    Ok(())
}

/// A 3 × 5 pixel glyph, top row first.
fn glyph(c: char) -> [&'static str; 5] {
    match c {
        'A' => [".#.", "#.#", "###", "#.#", "#.#"],
        'B' => ["##.", "#.#", "##.", "#.#", "##."],
        'C' => [".##", "#..", "#..", "#..", ".##"],
        'D' => ["##.", "#.#", "#.#", "#.#", "##."],
        'E' => ["###", "#..", "##.", "#..", "###"],
        'F' => ["###", "#..", "##.", "#..", "#.."],
        'G' => [".##", "#..", "#.#", "#.#", ".##"],
        'H' => ["#.#", "#.#", "###", "#.#", "#.#"],
        'I' => ["###", ".#.", ".#.", ".#.", "###"],
        'J' => ["..#", "..#", "..#", "#.#", ".#."],
        'K' => ["#.#", "#.#", "##.", "#.#", "#.#"],
        'L' => ["#..", "#..", "#..", "#..", "###"],
        'M' => ["#.#", "###", "###", "#.#", "#.#"],
        'N' => ["##.", "#.#", "#.#", "#.#", "#.#"],
        'O' => [".#.", "#.#", "#.#", "#.#", ".#."],
        'P' => ["##.", "#.#", "##.", "#..", "#.."],
        'Q' => [".#.", "#.#", "#.#", "##.", ".##"],
        'R' => ["##.", "#.#", "##.", "#.#", "#.#"],
        'S' => [".##", "#..", ".#.", "..#", "##."],
        'T' => ["###", ".#.", ".#.", ".#.", ".#."],
        'U' => ["#.#", "#.#", "#.#", "#.#", "###"],
        'V' => ["#.#", "#.#", "#.#", "#.#", ".#."],
        'W' => ["#.#", "#.#", "###", "###", "#.#"],
        'X' => ["#.#", "#.#", ".#.", "#.#", "#.#"],
        'Y' => ["#.#", "#.#", ".#.", ".#.", ".#."],
        'Z' => ["###", "..#", ".#.", "#..", "###"],
        '0' => ["###", "#.#", "#.#", "#.#", "###"],
        '1' => [".#.", "##.", ".#.", ".#.", "###"],
        '2' => ["##.", "..#", ".#.", "#..", "###"],
        '3' => ["##.", "..#", ".#.", "..#", "##."],
        '4' => ["#.#", "#.#", "###", "..#", "..#"],
        '5' => ["###", "#..", "##.", "..#", "##."],
        '6' => [".##", "#..", "###", "#.#", "###"],
        '7' => ["###", "..#", ".#.", ".#.", ".#."],
        '8' => ["###", "#.#", "###", "#.#", "###"],
        '9' => ["###", "#.#", "###", "..#", "##."],
        '-' => ["...", "...", "###", "...", "..."],
        '.' => ["...", "...", "...", "...", ".#."],
        _ => ["...", "...", "...", "...", "..."],
    }
}

/// The width and height a PNG file's header gives, if `bytes` start like
/// one (the signature, then the IHDR chunk).
pub fn png_size(bytes: &[u8]) -> Option<(u32, u32)> {
    const SIGNATURE: [u8; 8] = [0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a];
    if bytes.len() < 24 || bytes[..8] != SIGNATURE || &bytes[12..16] != b"IHDR" {
        return None;
    }
    let word = |at: usize| u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
    Some((word(16), word(20)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_timeline_is_a_png_of_the_expected_size() {
        let dir = std::env::temp_dir().join(format!("raft-chaos-timeline-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        let path = dir.join("timeline.png");
        let mut records = Vec::new();
        for i in 0..600u64 {
            let kind =
                [Kind::Get, Kind::LeaseGet, Kind::Put, Kind::Delete, Kind::Cas, Kind::Txn][i as usize % 6];
            let status = [Status::Ok, Status::Ok, Status::Ok, Status::Fail, Status::Unknown][i as usize % 5];
            let latency = 200 * (1 + i % 40) * (1 + i % 7);
            let (invoke_us, complete_us) = (i * 20_000, i * 20_000 + latency);
            records.push(Record { status, invoke_us, complete_us, ..Record::new(0, 1, kind, 0) });
        }
        let faults = [
            Band { name: "kill-leader".into(), start_us: 1_000_000, end_us: 3_000_000 },
            Band { name: "split".into(), start_us: 5_000_000, end_us: 7_500_000 },
            Band { name: "pause".into(), start_us: 9_000_000, end_us: 10_000_000 },
        ];
        draw(&path, &records, &faults).expect("draws");
        let bytes = std::fs::read(&path).expect("written");
        assert_eq!(png_size(&bytes), Some(size()));
        assert!(bytes.len() < 200_000, "{} bytes", bytes.len());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn png_size_refuses_what_is_not_a_png() {
        assert_eq!(png_size(b"GIF89a......................"), None);
        assert_eq!(png_size(&[]), None);
    }

    #[test]
    fn every_fault_kind_and_lane_name_has_glyphs() {
        let names = [
            "kill-leader",
            "kill-all",
            "pause-leader",
            "isolate-leader",
            "split",
            "one-way",
            "bridge",
            "flaky",
        ];
        for c in names.iter().flat_map(|n| n.to_uppercase().chars().collect::<Vec<_>>()) {
            assert!(glyph(c).iter().any(|row| row.contains('#')), "no glyph for {c:?}");
        }
    }
}
