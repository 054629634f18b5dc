//! What a scheduling decision records, and how it explains itself.
//!
//! kube-scheduler keeps most of its reasoning to itself: the pod gets either a
//! binding or a `PodScheduled=False` condition with a one-line summary, and
//! per-node scores only show up at log verbosity 10. Our scheduler keeps
//! *everything* — each node's filter verdict and each plugin's raw,
//! normalised and weighted score — so that learners can see why a pod landed
//! where it did, in an annotation, an Event and the lab's output.

use std::collections::BTreeMap;
use std::fmt;
use std::fmt::Write as _;
use std::sync::Arc;

use super::filters::{Reason, Rejection};
use super::scores::PLUGINS;

/// One plugin's score for one node.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PluginScore {
    /// What the plugin's `Score` returned.
    pub raw: i64,
    /// After `NormalizeScore` (0..=100); equal to `raw` for plugins without one.
    pub normalized: i64,
    /// `normalized × weight`, the part of the node's total.
    pub weighted: i64,
}

/// All score plugins for one node, in the order of [`PLUGINS`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeScores {
    pub plugins: [PluginScore; 5],
    pub total: i64,
}

/// What happened to one node in this decision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeVerdict {
    pub node: Arc<str>,
    /// `Ok` if every filter passed.
    pub filter: Result<(), Rejection>,
    /// Present for feasible nodes when scoring ran (two or more feasible).
    pub scores: Option<NodeScores>,
}

/// A successful decision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placement {
    pub node: Arc<str>,
    /// How many nodes passed the filters.
    pub feasible: usize,
    /// How many feasible nodes shared the winning total (the random pick was
    /// among these). 1 when there was no tie or no scoring.
    pub ties: usize,
    /// The highest-scoring nodes, best first, at most 3
    /// (`numberOfHighestScoredNodesToReport`); ties in the order examined. Empty when
    /// a single feasible node was chosen without scoring.
    pub top: Vec<(Arc<str>, i64)>,
}

/// No node passed the filters (upstream's `FitError`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FitError {
    pub num_all_nodes: usize,
    /// How many nodes gave each reason. A node rejected for two reasons
    /// (say Insufficient cpu *and* memory) counts under both.
    pub reasons: BTreeMap<Reason, usize>,
}

// ANCHOR: fit_error
impl fmt::Display for FitError {
    /// `0/3 nodes are available: 1 node(s) had untolerated taint
    /// {node.kubernetes.io/unreachable: }, 2 Insufficient cpu.`
    ///
    /// Upstream formats each entry as `"<count> <reason>"` and sorts those
    /// *strings* (Go's `sort.Strings`), so the order is by count first, as
    /// text ("10 ..." sorts before "2 ..."). We do exactly the same.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.num_all_nodes == 0 {
            return f.write_str("no nodes available to schedule pods");
        }
        let mut entries: Vec<String> = self
            .reasons
            .iter()
            .map(|(reason, count)| format!("{count} {reason}"))
            .collect();
        entries.sort();
        write!(f, "0/{} nodes are available:", self.num_all_nodes)?;
        if !entries.is_empty() {
            write!(f, " {}.", entries.join(", "))?;
        }
        Ok(())
    }
}
// ANCHOR_END: fit_error

impl std::error::Error for FitError {}

/// Everything the scheduler decided about one pod, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// `namespace/name`.
    pub pod: String,
    pub num_all_nodes: usize,
    /// Every node the filters looked at, in the order they were looked at.
    /// With sampling (see [`super::Scheduler`]) this can be fewer than all.
    pub examined: Vec<NodeVerdict>,
    /// Score plugins that sat this cycle out (upstream: PreScore → Skip),
    /// in [`PLUGINS`] order.
    pub skipped_plugins: [bool; 5],
    pub result: Result<Placement, FitError>,
}

impl Decision {
    /// The chosen node, if any.
    pub fn node(&self) -> Option<&str> {
        self.result.as_ref().ok().map(|p| &*p.node)
    }

    /// The `PodScheduled=False` message for an unschedulable pod.
    pub fn message(&self) -> Option<String> {
        self.result.as_ref().err().map(ToString::to_string)
    }

    /// One line: where the pod went, or why it could not go anywhere.
    pub fn summary(&self) -> String {
        match &self.result {
            Ok(p) => {
                let how = match p.top.first() {
                    None => "the only feasible node, chosen without scoring".to_string(),
                    Some((_, score)) if p.ties > 1 => {
                        format!("score {score}, picked at random among {} tied", p.ties)
                    }
                    Some((_, score)) => format!("score {score}"),
                };
                format!(
                    "{} -> {} ({}/{} nodes feasible; {how})",
                    self.pod, p.node, p.feasible, self.num_all_nodes
                )
            }
            Err(e) => format!("{}: {e}", self.pod),
        }
    }

    // ANCHOR: explain
    /// A compact table of the whole decision, deterministic (the same
    /// decision always prints the same text), e.g.
    ///
    /// ```text
    /// default/p -> b (2/3 nodes feasible; score 450)
    /// NODE   FILTER  TAINT×3  AFFINITY×2  FIT×1  SPREAD×2  BALANCED×1  TOTAL
    /// a      ok      100(0)   0           37     -         87          424
    /// b      ok      100(0)   0           50     -         100         450
    /// small  NodeResourcesFit: Insufficient cpu
    /// top: b 450, a 424
    /// ```
    ///
    /// Cells are the normalised 0..100 score, with the raw score in brackets
    /// where normalisation changed it; `-` is a plugin that skipped;
    /// TOTAL = Σ score × weight.
    pub fn explain(&self) -> String {
        let mut out = self.summary();
        out.push('\n');
        let short = ["TAINT", "AFFINITY", "FIT", "SPREAD", "BALANCED"];
        let mut rows: Vec<Vec<String>> = Vec::with_capacity(self.examined.len() + 1);
        let mut header = vec!["NODE".to_string(), "FILTER".to_string()];
        header.extend(
            short
                .iter()
                .zip(PLUGINS)
                .map(|(name, (_, weight))| format!("{name}×{weight}")),
        );
        header.push("TOTAL".to_string());
        rows.push(header);
        for v in &self.examined {
            let mut row = vec![v.node.to_string()];
            match &v.filter {
                Err(r) => {
                    let reasons: Vec<String> = r.reasons.iter().map(ToString::to_string).collect();
                    row.push(format!("{}: {}", r.plugin, reasons.join(", ")));
                }
                Ok(()) => row.push("ok".to_string()),
            }
            if let Some(s) = &v.scores {
                for (p, score) in s.plugins.iter().enumerate() {
                    row.push(if self.skipped_plugins[p] {
                        "-".to_string()
                    } else if score.raw != score.normalized {
                        format!("{}({})", score.normalized, score.raw)
                    } else {
                        score.normalized.to_string()
                    });
                }
                row.push(s.total.to_string());
            }
            rows.push(row);
        }
        out.push_str(&render_table(&rows));
        let unexamined = self.num_all_nodes - self.examined.len();
        if unexamined > 0 {
            let _ = writeln!(
                out,
                "({unexamined} more nodes not examined: enough feasible nodes were found)"
            );
        }
        if let Ok(p) = &self.result
            && p.top.len() > 1
        {
            let top: Vec<String> = p.top.iter().map(|(n, s)| format!("{n} {s}")).collect();
            let _ = writeln!(out, "top: {}", top.join(", "));
        }
        out
    }
    // ANCHOR_END: explain
}

/// Left-aligned columns, two spaces apart, no trailing spaces. Rows may be
/// shorter than the header (rejected nodes have no scores).
fn render_table(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut widths = vec![0; columns];
    for row in rows {
        // A row's last cell does not widen its column: long rejection reasons
        // would otherwise push every score far to the right.
        for (c, cell) in row.iter().enumerate().take(row.len().saturating_sub(1)) {
            widths[c] = widths[c].max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            if c + 1 < row.len() {
                let pad = widths[c] - cell.chars().count();
                line.push_str(cell);
                line.extend(std::iter::repeat_n(' ', pad + 2));
            } else {
                line.push_str(cell);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}
