//! Golden traces: a scenario test's whole [`trace`](crate::trace), compared
//! line for line with a file checked in beside the tests
//! (`raft-sim/tests/golden/<name>.trace`), as toydb's goldenscripts and
//! etcd's datadriven tests do.
//!
//! The test's assertions stay its claims; the trace pins the path it took
//! to them: every message, durable write, commit and role change. A change
//! to the protocol that keeps the claims but changes the path fails the
//! comparison with the first differing lines; if the change is meant,
//! rewrite the files and review them as a diff:
//!
//! ```text
//! RAFT_GOLDEN_UPDATE=1 cargo test -p raft-sim --test scenarios
//! git diff raft-sim/tests/golden/
//! ```
//!
//! Lines starting with `#` are comments, written on update and ignored by
//! the comparison.

use crate::Cluster;
use std::fmt::Write;
use std::path::{Path, PathBuf};

/// Set to `1` to rewrite the golden files instead of comparing with them.
pub const UPDATE_VAR: &str = "RAFT_GOLDEN_UPDATE";

/// The most differing lines a mismatch report shows.
const SHOWN_LINES: usize = 40;

/// Lines of context around each difference.
const CONTEXT: usize = 3;

/// Where the golden trace of scenario `name` lives.
pub fn path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden").join(format!("{name}.trace"))
}

/// Compares `cluster`'s trace with the golden file of scenario `name` (or
/// rewrites the file, if [`UPDATE_VAR`] is `1`). Panics with a readable
/// diff on a mismatch.
pub fn check(name: &str, cluster: &Cluster) {
    check_about(name, "", cluster);
}

/// Like [`check`], with a note for the file's header: what part of the
/// scenario is traced, and why.
pub fn check_about(name: &str, about: &str, cluster: &Cluster) {
    assert!(!cluster.trace().is_empty(), "scenario {name} recorded no trace: call enable_trace first");
    let update = std::env::var(UPDATE_VAR).is_ok_and(|v| v == "1");
    if let Err(report) = check_file(&path(name), &header(name, about), cluster.trace(), update) {
        panic!("{report}");
    }
}

/// The comment lines a golden file opens with.
fn header(name: &str, about: &str) -> String {
    let mut h = format!("# {name}: the golden trace of this scenario test (see raft_sim::golden).\n");
    for line in about.lines() {
        let _ = writeln!(h, "# {line}");
    }
    let _ = writeln!(
        h,
        "# Rewrite with {UPDATE_VAR}=1 cargo test -p raft-sim --test scenarios; review the diff."
    );
    h
}

/// Compares `trace` with the file at `path`, or (if `update`) rewrites the
/// file, with `header` first. The error is the report.
pub fn check_file(path: &Path, header: &str, trace: &[String], update: bool) -> Result<(), String> {
    let mut text = header.to_string();
    for line in trace {
        text.push_str(line);
        text.push('\n');
    }
    let shown = path.strip_prefix(Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap_or(Path::new("")));
    let shown = shown.unwrap_or(path).display();
    if update {
        if std::fs::read_to_string(path).ok().as_deref() != Some(text.as_str()) {
            let written = path
                .parent()
                .map_or(Ok(()), std::fs::create_dir_all)
                .and_then(|()| std::fs::write(path, &text));
            written.map_err(|e| format!("cannot write {shown}: {e}"))?;
        }
        return Ok(());
    }
    let expected = std::fs::read_to_string(path).map_err(|e| {
        format!("no golden trace at {shown} ({e}).\nCreate it with {UPDATE_VAR}=1 cargo test -p raft-sim --test scenarios, and review it.")
    })?;
    match compare(&expected, &text) {
        None => Ok(()),
        Some(diff) => Err(format!(
            "this run's trace differs from the golden trace {shown}:\n{diff}\n\
             If the new path is meant, rewrite the file with {UPDATE_VAR}=1 cargo test -p raft-sim --test scenarios\n\
             and review it with git diff {shown}."
        )),
    }
}

/// Compares two golden texts, ignoring `#` comment lines: `None` if they
/// agree, else a report of the differing lines with their line numbers in
/// each text (`-` the expected, `+` this run's).
pub fn compare(expected: &str, actual: &str) -> Option<String> {
    let lines = |text: &str| -> Vec<(usize, String)> {
        text.lines()
            .enumerate()
            .map(|(i, l)| (i + 1, l.trim_end_matches('\r').to_string()))
            .filter(|(_, l)| !l.starts_with('#'))
            .collect()
    };
    let (old, new) = (lines(expected), lines(actual));
    let ops = diff(
        &old.iter().map(|l| l.1.as_str()).collect::<Vec<_>>(),
        &new.iter().map(|l| l.1.as_str()).collect::<Vec<_>>(),
    );
    if ops.iter().all(|op| matches!(op, Op::Same(_))) {
        return None;
    }
    let mut report = format!("expected {} trace lines, this run has {}\n", old.len(), new.len());
    let near_change = |k: usize| {
        ops[k.saturating_sub(CONTEXT)..(k + CONTEXT + 1).min(ops.len())]
            .iter()
            .any(|op| !matches!(op, Op::Same(_)))
    };
    let (mut shown, mut gap) = (0, true);
    for (k, op) in ops.iter().enumerate() {
        if !near_change(k) {
            gap = true;
            continue;
        }
        if shown == SHOWN_LINES {
            report.push_str("... (more differences follow)\n");
            break;
        }
        if gap {
            report.push_str("@@\n");
            gap = false;
        }
        let line = match *op {
            Op::Same(i) => format!("  {:>5} {}", old[i].0, old[i].1),
            Op::Removed(i) => format!("- {:>5} {}", old[i].0, old[i].1),
            Op::Added(j) => format!("+ {:>5} {}", new[j].0, new[j].1),
        };
        report.push_str(&line);
        report.push('\n');
        shown += 1;
    }
    Some(report)
}

/// One step of an edit script from the expected lines to the actual ones.
#[derive(Debug, Clone, Copy)]
enum Op {
    /// Expected line `i` is in this run too.
    Same(usize),
    /// Expected line `i` is missing from this run.
    Removed(usize),
    /// Actual line `j` is new.
    Added(usize),
}

/// The longest-common-subsequence edit script between `a` and `b`, after
/// their common prefix and suffix; a middle too large for the quadratic
/// table is reported as wholly replaced.
fn diff(a: &[&str], b: &[&str]) -> Vec<Op> {
    let prefix = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    let suffix = a[prefix..].iter().rev().zip(b[prefix..].iter().rev()).take_while(|(x, y)| x == y).count();
    let (a_mid, b_mid) = (&a[prefix..a.len() - suffix], &b[prefix..b.len() - suffix]);
    let mut ops: Vec<Op> = (0..prefix).map(Op::Same).collect();
    let (n, m) = (a_mid.len(), b_mid.len());
    if n.saturating_mul(m) > 4_000_000 {
        ops.extend((0..n).map(|i| Op::Removed(prefix + i)));
        ops.extend((0..m).map(|j| Op::Added(prefix + j)));
    } else {
        // lcs[i][j]: the longest common subsequence of a_mid[i..] and b_mid[j..].
        let mut lcs = vec![vec![0u32; m + 1]; n + 1];
        for i in (0..n).rev() {
            for j in (0..m).rev() {
                lcs[i][j] = if a_mid[i] == b_mid[j] {
                    lcs[i + 1][j + 1] + 1
                } else {
                    lcs[i + 1][j].max(lcs[i][j + 1])
                };
            }
        }
        let (mut i, mut j) = (0, 0);
        while i < n || j < m {
            if i < n && j < m && a_mid[i] == b_mid[j] {
                ops.push(Op::Same(prefix + i));
                (i, j) = (i + 1, j + 1);
            } else if i < n && (j == m || lcs[i + 1][j] >= lcs[i][j + 1]) {
                // Removed lines first, as diff(1) shows them.
                ops.push(Op::Removed(prefix + i));
                i += 1;
            } else {
                ops.push(Op::Added(prefix + j));
                j += 1;
            }
        }
    }
    ops.extend((0..suffix).map(|k| Op::Same(a.len() - suffix + k)));
    ops
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOLDEN: &str = "# header\n   0 n1 campaigns\n   0 1->2 Vote term=1 last=0@0\n   0 1->3 Vote term=1 last=0@0\n   0 2->1 VoteResponse term=1 granted=true\n   0 n1 role=Leader term=1 leader=1\n";

    #[test]
    fn equal_traces_agree_whatever_their_comments() {
        assert_eq!(compare(GOLDEN, GOLDEN), None);
        let other_header = GOLDEN.replacen("# header", "# another header\n# of two lines", 1);
        assert_eq!(compare(GOLDEN, &other_header), None);
    }

    #[test]
    fn a_changed_message_is_reported_with_its_line_numbers() {
        // What a core that skipped the vote's log check might send.
        let actual =
            GOLDEN.replace("2->1 VoteResponse term=1 granted=true", "2->1 VoteResponse term=1 granted=false");
        let report = compare(GOLDEN, &actual).expect("a mismatch");
        assert!(report.contains("-     5    0 2->1 VoteResponse term=1 granted=true"), "{report}");
        assert!(report.contains("+     5    0 2->1 VoteResponse term=1 granted=false"), "{report}");
        assert!(report.contains("      4    0 1->3 Vote term=1 last=0@0"), "context is shown: {report}");
        assert!(report.starts_with("expected 5 trace lines, this run has 5"), "{report}");
    }

    #[test]
    fn a_missing_and_an_extra_line_are_told_apart() {
        let actual = GOLDEN.replace("   0 1->3 Vote term=1 last=0@0\n", "")
            + "   1 1->2 Heartbeat term=1 commit=0 round=0\n";
        let report = compare(GOLDEN, &actual).expect("a mismatch");
        assert!(report.contains("-     4    0 1->3 Vote"), "{report}");
        assert!(report.contains("+     6    1 1->2 Heartbeat"), "{report}");
        assert!(!report.contains("-     5"), "the lines after it still match: {report}");
    }

    #[test]
    fn a_mismatch_against_a_file_says_how_to_update_it() {
        let dir = std::env::temp_dir().join(format!("raft-sim-golden-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("scenario.trace");
        std::fs::write(&file, GOLDEN).unwrap();
        let trace: Vec<String> = GOLDEN.lines().skip(1).map(str::to_string).collect();
        assert_eq!(check_file(&file, "# header\n", &trace, false), Ok(()));
        let mut changed = trace.clone();
        changed[2] = "   0 1->3 Vote term=2 last=0@0".to_string();
        let err = check_file(&file, "# header\n", &changed, false).unwrap_err();
        assert!(err.contains("RAFT_GOLDEN_UPDATE=1"), "{err}");
        assert!(err.contains("+     4    0 1->3 Vote term=2"), "{err}");
        let missing = check_file(&dir.join("absent.trace"), "", &trace, false).unwrap_err();
        assert!(missing.contains("no golden trace"), "{missing}");
        // Updating writes the new trace, after which it agrees.
        assert_eq!(check_file(&file, "# header\n", &changed, true), Ok(()));
        assert_eq!(check_file(&file, "# header\n", &changed, false), Ok(()));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
