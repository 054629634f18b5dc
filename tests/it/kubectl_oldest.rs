//! The oldest kubectl the README promises (1.27, from the machine's Cloud
//! SDK dispatcher) against the lab API server, which says it is 1.35.
//! Upstream supports one minor of client skew, but the core verbs speak
//! stable APIs (apps/v1, core v1, the three-way merge of `apply` through the
//! last-applied annotation and the OpenAPI documents — 1.27 reads the
//! Swagger 2.0 one, `/openapi/v2`, in protobuf), so an older client still
//! works; this module keeps that promise. The other kubectl modules use the
//! kubectl on the PATH (1.35 in CI).

use std::path::Path;

use workbook::apiserver::{DEPLOYMENT_YAML, OLDEST_KUBECTL, Output, TestServer};

/// Runs the 1.27 binary itself (not the dispatcher, which would pick the
/// binary closest to the server's minor). Missing is one clear panic line.
async fn old(s: &TestServer, args: &[&str], stdin: Option<&str>) -> Output {
    let binary = Path::new(OLDEST_KUBECTL);
    assert!(
        binary.exists(),
        "{OLDEST_KUBECTL} is not installed; this test needs the Cloud SDK's kubectl 1.27"
    );
    s.kubectl_stdin_with(binary, args, stdin).await
}

#[tokio::test(flavor = "multi_thread")]
async fn kubectl_1_27_get_create_apply_explain_delete() {
    let s = TestServer::start().await;

    let out = old(&s, &["version"], None).await;
    let text = out.ok();
    // 1.27 still prints the whole version.Info struct.
    assert!(
        text.contains(r#"Client Version: version.Info{Major:"1", Minor:"27""#),
        "{text}"
    );
    assert!(text.contains(r#"GitVersion:"v1.35.2-labs""#), "{text}");

    let f = s.file("deployment.yaml", DEPLOYMENT_YAML);
    let out = old(&s, &["create", "-f", &f], None).await;
    assert_eq!(out.ok().trim(), "deployment.apps/web created");

    let out = old(&s, &["get", "deploy"], None).await;
    let lines: Vec<&str> = out.ok().lines().collect();
    assert!(lines[0].starts_with("NAME"), "{}", out.stdout);
    assert!(
        lines[1].starts_with("web") && lines[1].contains("0/3"),
        "{}",
        out.stdout
    );

    // apply on an object that `create` made (no last-applied annotation):
    // kubectl patches it and warns; the new replica count must be stored.
    let changed = DEPLOYMENT_YAML.replace("replicas: 3", "replicas: 5");
    let out = old(&s, &["apply", "-f", "-"], Some(&changed)).await;
    assert_eq!(out.ok().trim(), "deployment.apps/web configured");
    let out = old(
        &s,
        &["get", "deploy", "web", "-o", "jsonpath={.spec.replicas}"],
        None,
    )
    .await;
    assert_eq!(out.ok().trim(), "5");

    // Strict validation (the default) through /openapi/v2: the server
    // refuses an unknown field.
    let typo = changed.replace("replicas: 5", "replicaz: 5");
    let out = old(&s, &["apply", "-f", "-"], Some(&typo)).await;
    assert_eq!(out.code, 1, "{}", out.stdout);
    assert!(
        out.stderr
            .contains(r#"strict decoding error: unknown field "spec.replicaz""#),
        "{}",
        out.stderr
    );

    let out = old(&s, &["explain", "deployment.spec.strategy"], None).await;
    let text = out.ok();
    assert!(
        text.contains("rollingUpdate\t<RollingUpdateDeployment>"),
        "{text}"
    );

    let out = old(&s, &["delete", "deploy", "web"], None).await;
    assert_eq!(out.deleted(), "deployment.apps \"web\" deleted");
    let out = old(&s, &["get", "deploy", "web"], None).await;
    assert_ne!(out.code, 0, "still there: {}", out.stdout);
    assert!(
        out.stderr.contains("NotFound") || out.stderr.contains("not found"),
        "{}",
        out.stderr
    );
}
