//! The `demo` command line: `--help` of every subcommand, the `--dry-run`
//! output and the local manifests (insta snapshots), and the errors that
//! must be one readable line.

use std::process::{Command, Output};

fn demo(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_demo"))
        .args(args)
        // Never the state of a `demo up` running on this machine.
        .env(
            "DEMO_STATE_DIR",
            std::env::temp_dir().join("demo-cli-test-none"),
        )
        .env_remove("KUBECONFIG")
        .output()
        .expect("the demo binary runs")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn help_of_every_subcommand() {
    for sub in [
        "",
        "run",
        "up",
        "build",
        "deploy",
        "update",
        "status",
        "history",
        "rollback",
        "down",
        "manifests",
        "plan",
        "bench",
        "completions",
        "man",
    ] {
        let args: Vec<&str> = if sub.is_empty() {
            vec!["--help"]
        } else {
            vec![sub, "--help"]
        };
        let out = demo(&args);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        let name = if sub.is_empty() { "demo" } else { sub };
        insta::assert_snapshot!(format!("help_{name}"), stdout(&out));
    }
}

/// What the dry run prints is fixed: placeholders, no cluster, no ports.
#[test]
fn dry_run_prints_the_manifests_and_the_api_calls() {
    let out = demo(&["run", "--dry-run", "--yes"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("→ PATCH /apis/apps/v1/namespaces/default/deployments/web?fieldManager=workbook-demo&force=true"), "{text}");
    assert!(!text.contains("demo-app:latest"));
    insta::assert_snapshot!("dry_run", text);
}

#[test]
fn local_manifests() {
    let out = demo(&["manifests"]);
    assert!(out.status.success(), "{}", stderr(&out));
    insta::assert_snapshot!("local_manifests", stdout(&out));
}

#[test]
fn completions_and_man_page_come_from_clap() {
    let bash = demo(&["completions", "bash"]);
    assert!(bash.status.success());
    assert!(
        stdout(&bash).contains("rollback"),
        "bash completion knows the steps"
    );
    let man = demo(&["man"]);
    assert!(man.status.success());
    let page = stdout(&man);
    assert!(
        page.starts_with(".ie") || page.contains(".TH demo"),
        "{page}"
    );
    assert!(page.contains("bad\\-version"), "the flags are documented");
}

/// One line on stderr, exit 1, no backtrace.
fn one_line_error(out: &Output, expected: &str) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    assert!(err.starts_with("demo: "), "{err}");
    assert!(err.contains(expected), "{expected:?} in {err}");
    assert!(
        !err.contains("panicked") && !err.contains("backtrace"),
        "{err}"
    );
}

#[test]
fn no_cluster_is_one_line() {
    // The single steps on local need a `demo up`; none runs.
    one_line_error(&demo(&["status"]), "no cluster at the context");
    // A context that does not exist.
    one_line_error(
        &demo(&["history", "--target", "local", "--context", "nowhere"]),
        "no cluster at nowhere",
    );
}

#[test]
fn docker_not_reachable_is_one_line() {
    let out = Command::new(env!("CARGO_BIN_EXE_demo"))
        .args(["build", "--runtime", "docker"])
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .output()
        .unwrap();
    one_line_error(
        &out,
        "Docker engine address unix:///nonexistent/docker.sock",
    );
}

/// A build the engine refuses (here: a tag Docker cannot parse) ends the
/// demo with the engine's reason in one line, not a backtrace. Real engine.
#[test]
fn an_image_build_failure_is_one_line() {
    if std::env::var_os("WORKBOOK_SKIP_DOCKER").is_some() {
        return;
    }
    let out = demo(&["build", "--runtime", "docker", "--version", "V2:Bad"]);
    one_line_error(&out, "the image build failed: workbook/demo-app:V2:Bad");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("invalid reference format"), "{stderr}");
}
