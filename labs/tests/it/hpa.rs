//! The HorizontalPodAutoscaler and the metrics API through the real
//! kubectl: `kubectl autoscale` and `get hpa`'s columns, the v1 view of a
//! v2 object and a write through v1, validation errors, `kubectl top`
//! with numbers the lab sets, and the HPA controller reacting to them.

use std::path::{Path, PathBuf};
use std::time::Duration;

use labs::apiserver::{ApiServer, kubeconfig};
use labs::cluster::{ClusterOptions, Components, SimulatedNodes};
use labs::kubelet::runtime::simulated::{CpuLoad, SimulatedConfig};
use labs::store::Store;

struct Cluster {
    kc: PathBuf,
    cache: PathBuf,
    _dir: tempfile::TempDir,
    load: CpuLoad,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    components: Option<Components>,
    nodes: Option<SimulatedNodes>,
}

impl Cluster {
    async fn start() -> Cluster {
        let api = ApiServer::new(Store::new());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let kc = dir.path().join("kubeconfig");
        let cache = dir.path().join("cache");
        kubeconfig::write_kubeconfig(&kc, listener.local_addr().unwrap()).unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(api.clone().serve(listener, async {
            let _ = stopped.await;
        }));
        let load = CpuLoad::default();
        let config = SimulatedConfig {
            load: load.clone(),
            ..SimulatedConfig::default()
        };
        // The scheduler comes with the nodes; the controller manager (with
        // the HPA controller) from the components.
        let nodes = SimulatedNodes::start(&api, &api.client(), 2, config, 1);
        let options = ClusterOptions {
            without: vec![labs::cluster::Component::Scheduler],
            ..ClusterOptions::default()
        };
        let components = Components::start(&api, &options);
        Cluster {
            kc,
            cache,
            _dir: dir,
            load,
            stop: Some(stop),
            server,
            components: Some(components),
            nodes: Some(nodes),
        }
    }

    async fn stop(mut self) {
        self.components.take().unwrap().shutdown().await.unwrap();
        self.nodes.take().unwrap().stop().await.unwrap();
        let _ = self.stop.take().unwrap().send(());
        self.server.await.unwrap().unwrap();
    }

    async fn kubectl_with(&self, bin: &str, args: &[&str], stdin: Option<&str>) -> (bool, String) {
        run(bin, &self.kc, &self.cache, args, stdin).await
    }

    async fn kubectl(&self, args: &[&str]) -> String {
        let (ok, out) = self.kubectl_with(&crate::kubectl(), args, None).await;
        assert!(ok, "kubectl {args:?} failed: {out}");
        out
    }
}

async fn run(
    bin: &str,
    kc: &Path,
    cache: &Path,
    args: &[&str],
    stdin: Option<&str>,
) -> (bool, String) {
    use tokio::io::AsyncWriteExt;
    let mut child = tokio::process::Command::new(bin)
        .arg("--kubeconfig")
        .arg(kc)
        .arg("--cache-dir")
        .arg(cache)
        .args(args)
        .env_remove("KUBECONFIG")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {bin}: {e}"));
    let mut input = child.stdin.take().unwrap();
    input
        .write_all(stdin.unwrap_or("").as_bytes())
        .await
        .unwrap();
    drop(input);
    let out = child.wait_with_output().await.unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

async fn wait_for(what: &str, secs: u64, mut f: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while !f().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

const DEPLOYMENT: &str = r#"{"apiVersion": "apps/v1", "kind": "Deployment",
  "metadata": {"name": "web"},
  "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
    "template": {"metadata": {"labels": {"app": "web"}},
      "spec": {"containers": [{"name": "app", "image": "workbook/demo-app:v1",
        "resources": {"requests": {"cpu": "100m"}}}]}}}}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_autoscale_get_hpa_top_and_the_v1_view() {
    let c = Cluster::start().await;
    let (ok, out) = c
        .kubectl_with(&crate::kubectl(), &["apply", "-f", "-"], Some(DEPLOYMENT))
        .await;
    assert!(ok, "{out}");
    c.kubectl(&[
        "autoscale",
        "deploy",
        "web",
        "--min=2",
        "--max=4",
        "--cpu-percent=80",
    ])
    .await;
    // The columns, and `<unknown>` before the controller has measured (it
    // may already have: then a percentage).
    let table = c.kubectl(&["get", "hpa", "web"]).await;
    let mut lines = table.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        [
            "NAME",
            "REFERENCE",
            "TARGETS",
            "MINPODS",
            "MAXPODS",
            "REPLICAS",
            "AGE"
        ]
    );
    let row = lines.next().unwrap();
    assert!(
        row.starts_with("web") && row.contains("Deployment/web") && row.contains("cpu: "),
        "{table}"
    );
    assert!(row.contains("/80%"), "{table}");

    // kubectl top: the demand the lab sets, spread over the two pods.
    c.load.set("workbook/demo-app:v1", 300);
    wait_for("two pods with metrics", 60, async || {
        let (ok, out) = c
            .kubectl_with(&crate::kubectl(), &["top", "pods"], None)
            .await;
        ok && out.matches("150m").count() == 2
    })
    .await;
    let top = c.kubectl(&["top", "pods"]).await;
    assert!(top.starts_with("NAME"), "{top}");
    assert!(top.contains("CPU(cores)") && top.contains("16Mi"), "{top}");
    let nodes = c.kubectl(&["top", "nodes"]).await;
    assert!(
        nodes.contains("node-1") && nodes.contains("node-2"),
        "{nodes}"
    );

    // At 150% of the request against an 80% target, the HPA scales the
    // Deployment up to its maximum and reports it.
    wait_for("the HPA to scale web to 4", 90, async || {
        let out = c
            .kubectl(&["get", "deploy", "web", "-o", "jsonpath={.spec.replicas}"])
            .await;
        out.trim() == "4"
    })
    .await;
    wait_for("TARGETS with a measured value", 60, async || {
        let out = c.kubectl(&["get", "hpa", "web"]).await;
        !out.contains("<unknown>") && out.contains("/80%")
    })
    .await;
    let described = c.kubectl(&["describe", "hpa", "web"]).await;
    assert!(described.contains("SuccessfulRescale"), "{described}");
    assert!(described.contains("ValidMetricFound"), "{described}");

    // The same object through autoscaling/v1: one CPU target, the
    // conditions kept in an annotation.
    let v1 = c
        .kubectl(&[
            "get",
            "--raw",
            "/apis/autoscaling/v1/namespaces/default/horizontalpodautoscalers/web",
        ])
        .await;
    let v1: serde_json::Value = serde_json::from_str(&v1).unwrap();
    assert_eq!(v1["apiVersion"], "autoscaling/v1");
    assert_eq!(v1["spec"]["targetCPUUtilizationPercentage"], 80);
    assert!(
        v1["status"]["currentCPUUtilizationPercentage"].is_i64(),
        "{v1}"
    );
    assert!(
        v1["metadata"]["annotations"]["autoscaling.alpha.kubernetes.io/conditions"].is_string(),
        "{v1}"
    );
    // A write through v1 (replace) shows in v2.
    let mut edited = v1.clone();
    edited["spec"]["targetCPUUtilizationPercentage"] = serde_json::json!(60);
    // Unconditional: the controller writes the status meanwhile.
    edited["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("resourceVersion");
    let (ok, out) = c
        .kubectl_with(
            &crate::kubectl(),
            &["replace", "-f", "-"],
            Some(&edited.to_string()),
        )
        .await;
    assert!(ok, "{out}");
    let yaml = c.kubectl(&["get", "hpa", "web", "-o", "yaml"]).await;
    assert!(yaml.contains("apiVersion: autoscaling/v2"), "{yaml}");
    assert!(yaml.contains("averageUtilization: 60"), "{yaml}");
    assert!(!yaml.contains("autoscaling.alpha.kubernetes.io"), "{yaml}");

    // Validation: 422 with the field path, in kubectl's one line.
    let bad = r#"{"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
      "metadata": {"name": "bad"},
      "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"},
               "minReplicas": 5, "maxReplicas": 2}}"#;
    let (ok, out) = c
        .kubectl_with(&crate::kubectl(), &["create", "-f", "-"], Some(bad))
        .await;
    assert!(!ok);
    assert!(
        out.contains(
            "spec.maxReplicas: Invalid value: 2: must be greater than or equal to `minReplicas`"
        ),
        "{out}"
    );
    c.stop().await;
}

/// kubectl 1.29's `autoscale` still creates an autoscaling/v1 object (with
/// `targetCPUUtilizationPercentage`); the server stores it as v2.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_older_kubectl_autoscales_through_v1() {
    let old = "/usr/lib/google-cloud-sdk/bin/kubectl.1.29";
    assert!(
        Path::new(old).exists(),
        "{old} is missing: install the Cloud SDK's kubectl components"
    );
    let c = Cluster::start().await;
    let (ok, out) = c
        .kubectl_with(&crate::kubectl(), &["apply", "-f", "-"], Some(DEPLOYMENT))
        .await;
    assert!(ok, "{out}");
    let (ok, out) = c
        .kubectl_with(
            old,
            &[
                "autoscale",
                "deploy",
                "web",
                "--min=2",
                "--max=5",
                "--cpu-percent=70",
                "-v=6",
            ],
            None,
        )
        .await;
    assert!(ok, "{out}");
    assert!(out.contains("/apis/autoscaling/v1/"), "{out}");
    let yaml = c.kubectl(&["get", "hpa", "web", "-o", "yaml"]).await;
    assert!(yaml.contains("averageUtilization: 70"), "{yaml}");
    assert!(yaml.contains("maxReplicas: 5"), "{yaml}");
    c.stop().await;
}

/// `spec.behavior`: absent stays absent (kubectl autoscale's HPA takes
/// the controller's older path); given in part, the API server fills in
/// the rest as upstream's `SetDefaults_HorizontalPodAutoscalerBehavior`
/// does; bad rules are a 422 with field paths.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behavior_is_defaulted_where_given_and_validated() {
    let c = Cluster::start().await;
    let (ok, out) = c
        .kubectl_with(&crate::kubectl(), &["apply", "-f", "-"], Some(DEPLOYMENT))
        .await;
    assert!(ok, "{out}");
    c.kubectl(&["autoscale", "deploy", "web", "--max=4", "--cpu-percent=80"])
        .await;
    let behavior = c
        .kubectl(&["get", "hpa", "web", "-o", "jsonpath={.spec.behavior}"])
        .await;
    assert_eq!(behavior.trim(), "", "kubectl autoscale sets no behavior");

    let partial = r#"{"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
      "metadata": {"name": "tuned"},
      "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
               "maxReplicas": 4,
               "behavior": {"scaleDown": {"stabilizationWindowSeconds": 60}}}}"#;
    let (ok, out) = c
        .kubectl_with(&crate::kubectl(), &["create", "-f", "-"], Some(partial))
        .await;
    assert!(ok, "{out}");
    let got = c
        .kubectl(&["get", "hpa", "tuned", "-o", "jsonpath={.spec.behavior}"])
        .await;
    let got: serde_json::Value = serde_json::from_str(&got).unwrap();
    assert_eq!(
        got,
        serde_json::json!({
            "scaleUp": {"stabilizationWindowSeconds": 0, "selectPolicy": "Max", "policies": [
                {"type": "Pods", "value": 4, "periodSeconds": 15},
                {"type": "Percent", "value": 100, "periodSeconds": 15}]},
            "scaleDown": {"stabilizationWindowSeconds": 60, "selectPolicy": "Max", "policies": [
                {"type": "Percent", "value": 100, "periodSeconds": 15}]},
        })
    );

    let bad = r#"{"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
      "metadata": {"name": "bad"},
      "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "maxReplicas": 4,
               "behavior": {"scaleUp": {"stabilizationWindowSeconds": 4000, "selectPolicy": "Fast",
                 "policies": [{"type": "Pods", "value": 0, "periodSeconds": 3600}]}}}}"#;
    let (ok, out) = c
        .kubectl_with(&crate::kubectl(), &["create", "-f", "-"], Some(bad))
        .await;
    assert!(!ok, "{out}");
    for want in [
        "spec.behavior.scaleUp.stabilizationWindowSeconds: Invalid value: 4000: must be less than or equal to 3600",
        r#"spec.behavior.scaleUp.selectPolicy: Unsupported value: "Fast""#,
        "spec.behavior.scaleUp.policies[0].value: Invalid value: 0: must be greater than zero",
        "spec.behavior.scaleUp.policies[0].periodSeconds: Invalid value: 3600: must be less than or equal to 1800",
    ] {
        assert!(out.contains(want), "missing {want:?} in {out}");
    }
    c.stop().await;
}
