//! `labs rollout`: a rolling update on the in-process cluster, in lockstep
//! on virtual time. Its (new, old) scale steps must be exactly the worked
//! examples of the reference (`controllers.md` §1.5), which come from
//! upstream's tick model; the whole timelines are snapshots.

use crate::lab::rollout::{Format, RolloutArgs, Strategy, render, rollout};

fn args(replicas: i32, max_surge: &str, max_unavailable: &str) -> RolloutArgs {
    RolloutArgs {
        replicas,
        max_surge: max_surge.into(),
        max_unavailable: max_unavailable.into(),
        ..RolloutArgs::default()
    }
}

async fn steps(args: RolloutArgs) -> Vec<(i32, i32)> {
    rollout(&args).await.unwrap().timelines[0].scale_steps()
}

#[tokio::test(start_paused = true)]
async fn ten_replicas_at_25_percent() {
    assert_eq!(
        steps(args(10, "25%", "25%")).await,
        [(3, 8), (5, 8), (5, 3), (10, 3), (10, 0)]
    );
}

#[tokio::test(start_paused = true)]
async fn three_replicas_surge_1_unavailable_0() {
    assert_eq!(
        steps(args(3, "1", "0")).await,
        [(1, 3), (1, 2), (2, 2), (2, 1), (3, 1), (3, 0)]
    );
}

#[tokio::test(start_paused = true)]
async fn ten_replicas_surge_0_unavailable_1() {
    let mut expected = vec![(0, 9)];
    for n in 1..=9 {
        expected.push((n, 10 - n));
        expected.push((n, 9 - n));
    }
    expected.push((10, 0));
    assert_eq!(steps(args(10, "0", "1")).await, expected);
}

#[tokio::test(start_paused = true)]
async fn five_replicas_surge_100_percent() {
    assert_eq!(steps(args(5, "100%", "0")).await, [(5, 5), (5, 0)]);
}

/// The same steps whatever the readiness delay (the reference: "for any
/// uniform readiness delay, including 0").
#[tokio::test(start_paused = true)]
async fn steps_do_not_depend_on_the_readiness_delay() {
    for ready_after in [0, 1, 30] {
        let a = RolloutArgs {
            ready_after,
            ..args(10, "25%", "25%")
        };
        assert_eq!(
            steps(a).await,
            [(3, 8), (5, 8), (5, 3), (10, 3), (10, 0)],
            "ready after {ready_after}s"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn recreate_scales_old_to_zero_first() {
    let a = RolloutArgs {
        strategy: Strategy::Recreate,
        ..args(3, "25%", "25%")
    };
    assert_eq!(steps(a).await, [(0, 0), (3, 0)]);
}

async fn table(args: RolloutArgs) -> String {
    render(&rollout(&args).await.unwrap(), Format::Table)
}

#[tokio::test(start_paused = true)]
async fn timeline_10_at_25_percent() {
    insta::assert_snapshot!(table(args(10, "25%", "25%")).await);
}

#[tokio::test(start_paused = true)]
async fn timeline_3_surge_1_unavailable_0() {
    insta::assert_snapshot!(table(args(3, "1", "0")).await);
}

#[tokio::test(start_paused = true)]
async fn timeline_10_surge_0_unavailable_1() {
    insta::assert_snapshot!(table(args(10, "0", "1")).await);
}

#[tokio::test(start_paused = true)]
async fn timeline_5_surge_100_percent() {
    insta::assert_snapshot!(table(args(5, "100%", "0")).await);
}

/// History and undo: the old ReplicaSet is reused and renumbered.
#[tokio::test(start_paused = true)]
async fn timeline_undo_and_history() {
    let a = RolloutArgs {
        undo: true,
        ..args(4, "25%", "25%")
    };
    let run = rollout(&a).await.unwrap();
    assert_eq!(run.timelines[1].scale_steps().last(), Some(&(4, 0)));
    insta::assert_snapshot!(render(&run, Format::Table));
}

/// A version that never becomes ready: the rollout stalls within
/// maxUnavailable, reports ProgressDeadlineExceeded, and is *not* rolled
/// back automatically; the undo is a human's decision.
#[tokio::test(start_paused = true)]
async fn timeline_fail_new_then_undo() {
    let a = RolloutArgs {
        fail_new: true,
        undo: true,
        progress_deadline_seconds: 60,
        ..args(10, "25%", "25%")
    };
    let run = rollout(&a).await.unwrap();
    assert_eq!(run.timelines[0].scale_steps(), [(3, 8), (5, 8)]);
    insta::assert_snapshot!(render(&run, Format::Table));
}

#[tokio::test(start_paused = true)]
async fn json_lines_carry_the_counts() {
    let run = rollout(&args(3, "1", "0")).await.unwrap();
    let out = render(&run, Format::Json);
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(!lines.is_empty());
    for line in &lines {
        for key in ["new_replicas", "old_replicas", "available", "t", "sync"] {
            assert!(line[key].is_i64(), "{key} in {line}");
        }
    }
    assert_eq!(lines[0]["new_replicas"], 1);
    assert_eq!(lines[0]["old_replicas"], 3);
}

/// Same flags, same timeline.
#[tokio::test(start_paused = true)]
async fn deterministic() {
    let a = RolloutArgs {
        min_ready_seconds: 3,
        undo: true,
        ..args(10, "25%", "25%")
    };
    assert_eq!(table(a.clone()).await, table(a).await);
}

/// The book's rollout chart is generated: `book/src/generated/
/// labs-rollout-chart.mmd` must be exactly what `labs rollout --format
/// mermaid` prints, and the JSON sample what `--format json | head -3` does.
#[tokio::test(start_paused = true)]
async fn the_book_chart_and_json_are_generated() {
    let chart = render(
        &rollout(&RolloutArgs::default()).await.unwrap(),
        Format::Mermaid,
    );
    crate::lab::book::check_generated("labs-rollout-chart.mmd", &chart)
        .unwrap_or_else(|e| panic!("{e}"));
    let json = render(&rollout(&args(3, "1", "0")).await.unwrap(), Format::Json);
    let head: String = json.lines().take(3).map(|l| format!("{l}\n")).collect();
    crate::lab::book::check_generated("labs-rollout-json.txt", &head)
        .unwrap_or_else(|e| panic!("{e}"));
}

/// The chapter includes two runs of the lab (the default rollout, and the
/// broken version then undo) from `book/src/generated/`; they must be what
/// the lab prints now.
#[tokio::test(start_paused = true)]
async fn the_book_shows_the_real_output() {
    let default = render(
        &rollout(&RolloutArgs::default()).await.unwrap(),
        Format::Table,
    );
    let broken = RolloutArgs {
        fail_new: true,
        undo: true,
        progress_deadline_seconds: 60,
        ..RolloutArgs::default()
    };
    let broken = render(&rollout(&broken).await.unwrap(), Format::Table);
    for (generated, output) in [
        ("labs-rollout.txt", default),
        ("labs-rollout-fail-new-undo.txt", broken),
    ] {
        crate::lab::book::check_generated(generated, &output).unwrap_or_else(|e| panic!("{e}"));
    }
}
