//! ServiceAccounts, and the authentication and authorization reviews behind
//! `kubectl auth whoami` and `kubectl auth can-i`: the real kubectl against
//! a served cluster with the controller manager, and the reviews from
//! kube-rs. Real time and real sockets, so every wait is bounded.

use std::time::Duration;

use k8s_openapi::api::authorization::v1::SelfSubjectAccessReview;
use k8s_openapi::api::core::v1::{Pod, ServiceAccount};
use kube::api::{Api, PostParams};
use labs::cluster::{ClusterOptions, Component, Components};
use workbook::apiserver::TestServer;
use workbook::cluster::wait_for;

const LIMIT: Duration = Duration::from_secs(30);

const POD_WITH_SA: &str = "apiVersion: v1
kind: Pod
metadata:
  name: NAME
spec:
  serviceAccountName: ACCOUNT
  containers:
  - name: app
    image: workbook/demo-app:v1
";

fn controllers_only() -> ClusterOptions {
    ClusterOptions {
        without: vec![Component::Scheduler, Component::NodeLifecycle],
        ..ClusterOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_namespace_gets_a_default_service_account_and_pods_run_as_it() {
    let s = TestServer::start().await;
    let components = Components::start(&s.api, &controllers_only());

    let out = s.kubectl(&["create", "serviceaccount", "sa1"]).await;
    assert_eq!(out.ok().trim(), "serviceaccount/sa1 created");
    wait_for("default in default", LIMIT, || async {
        s.kubectl(&["get", "sa", "default"]).await.code == 0
    })
    .await;
    let out = s.kubectl(&["get", "sa"]).await;
    let text = out.ok();
    let header: Vec<&str> = text.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "SECRETS", "AGE"], "{text}");
    assert!(text.lines().any(|l| l.starts_with("sa1 ")), "{text}");

    // A namespace created later gets one too, and a deleted one comes back.
    s.kubectl(&["create", "namespace", "team-a"]).await.ok();
    wait_for("default in team-a", LIMIT, || async {
        s.kubectl(&["-n", "team-a", "get", "sa", "default"])
            .await
            .code
            == 0
    })
    .await;
    s.kubectl(&["-n", "team-a", "delete", "sa", "default"])
        .await
        .ok();
    let accounts: Api<ServiceAccount> = Api::namespaced(s.client(), "team-a");
    wait_for("default recreated", LIMIT, || async {
        accounts.get_opt("default").await.ok().flatten().is_some()
    })
    .await;

    // A pod without an account runs as `default` (and the deprecated
    // field says the same).
    s.kubectl(&["run", "one", "--image=workbook/demo-app:v1"])
        .await
        .ok();
    let pods: Api<Pod> = Api::default_namespaced(s.client());
    let spec = pods.get("one").await.unwrap().spec.unwrap();
    assert_eq!(spec.service_account_name.as_deref(), Some("default"));
    assert_eq!(spec.service_account.as_deref(), Some("default"));

    // One naming an account that exists is created; one naming a missing
    // account is refused by the ServiceAccount admission plugin.
    let ok = s.file(
        "ok.yaml",
        &POD_WITH_SA.replace("NAME", "two").replace("ACCOUNT", "sa1"),
    );
    s.kubectl(&["create", "-f", &ok]).await.ok();
    let bad = s.file(
        "bad.yaml",
        &POD_WITH_SA
            .replace("NAME", "three")
            .replace("ACCOUNT", "nobody"),
    );
    let out = s.kubectl(&["create", "-f", &bad]).await;
    assert_eq!(out.code, 1, "{out:?}");
    assert_eq!(
        out.stderr.trim(),
        "Error from server (Forbidden): error when creating \"".to_string()
            + &bad
            + "\": pods \"three\" is forbidden: error looking up service account default/nobody: serviceaccount \"nobody\" not found"
    );
    // Admission runs before a generated name exists: upstream names the pod
    // by its prefix.
    let mut generated: Pod =
        serde_yaml::from_str(&POD_WITH_SA.replace("ACCOUNT", "nobody")).unwrap();
    generated.metadata.name = None;
    generated.metadata.generate_name = Some("three-".into());
    let err = pods
        .create(&PostParams::default(), &generated)
        .await
        .unwrap_err();
    let kube::Error::Api(status) = err else {
        panic!("{err:?}");
    };
    assert_eq!(
        (status.code, status.message.as_str()),
        (
            403,
            "pods \"three-\" is forbidden: error looking up service account default/nobody: serviceaccount \"nobody\" not found"
        )
    );
    components.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn kubectl_auth_can_i_and_whoami_answer_for_a_cluster_without_authorization() {
    let s = TestServer::start().await;
    let out = s.kubectl(&["auth", "can-i", "create", "pods"]).await;
    assert_eq!(out.ok().trim(), "yes");
    let out = s
        .kubectl(&[
            "auth",
            "can-i",
            "delete",
            "deployments",
            "-n",
            "kube-system",
        ])
        .await;
    assert_eq!(out.ok().trim(), "yes");
    let out = s.kubectl(&["auth", "can-i", "--list"]).await;
    let text = out.ok();
    assert!(text.lines().any(|l| l.starts_with("*.*")), "{text}");

    let out = s.kubectl(&["auth", "whoami"]).await;
    let text = out.ok();
    let rows: Vec<Vec<&str>> = text
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows[0], ["ATTRIBUTE", "VALUE"], "{text}");
    assert_eq!(rows[1], ["Username", "system:anonymous"], "{text}");
    assert_eq!(rows[2], ["Groups", "[system:unauthenticated]"], "{text}");

    // The review is an answer, not an object: kube-rs gets it back with
    // its status, and a question about nothing is refused as upstream.
    let reviews: Api<SelfSubjectAccessReview> = Api::all(s.client());
    let review: SelfSubjectAccessReview = serde_json::from_value(serde_json::json!({
        "spec": {"resourceAttributes": {"verb": "get", "resource": "secrets", "namespace": "default"}},
    }))
    .unwrap();
    let answer = reviews
        .create(&PostParams::default(), &review)
        .await
        .unwrap();
    let status = answer.status.unwrap();
    assert!(status.allowed);
    assert_eq!(
        status.reason.as_deref(),
        Some(labs::apiserver::handlers::ALLOW_REASON)
    );
    let empty: SelfSubjectAccessReview =
        serde_json::from_value(serde_json::json!({"spec": {}})).unwrap();
    let err = reviews
        .create(&PostParams::default(), &empty)
        .await
        .unwrap_err();
    let kube::Error::Api(status) = err else {
        panic!("{err:?}");
    };
    assert_eq!(status.code, 422);
    assert!(
        status.message.contains(
            "spec.resourceAttributes: Invalid value: null: exactly one of nonResourceAttributes or resourceAttributes must be specified"
        ),
        "{}",
        status.message
    );
    // Nothing was stored: there is nothing to list.
    let out = s.kubectl(&["get", "selfsubjectaccessreviews"]).await;
    assert_ne!(out.code, 0);
}
