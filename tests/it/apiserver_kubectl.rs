//! The real kubectl (`$WORKBOOK_KUBECTL` or the first on the PATH: 1.35 in
//! CI, else the machine's dispatcher) against the lab API server on
//! loopback. Each test starts its own server and asserts on what kubectl
//! prints and on what the server stored.

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use workbook::apiserver::{DEPLOYMENT_YAML, TestServer, read_until};

fn deployment_v2() -> String {
    DEPLOYMENT_YAML
        .replace("replicas: 3", "replicas: 4")
        .replace(
            "image: app:v1",
            "image: app:v2\n        env:\n        - name: MODE\n          value: prod",
        )
        .replace("        ports:\n        - containerPort: 8080\n", "")
}

#[tokio::test(flavor = "multi_thread")]
async fn version_get_describe_and_errors() {
    let s = TestServer::start().await;
    let out = s.kubectl(&["version"]).await;
    assert!(
        out.ok().contains("Server Version: v1.35.2"),
        "{}",
        out.stdout
    );

    let f = s.file("deployment.yaml", DEPLOYMENT_YAML);
    assert_eq!(
        s.kubectl(&["create", "-f", &f]).await.ok().trim(),
        "deployment.apps/web created"
    );

    // The symptom the next lab fixes: nothing makes the pods.
    let out = s.kubectl(&["get", "deploy"]).await;
    let lines: Vec<&str> = out.ok().lines().collect();
    assert!(lines[0].starts_with("NAME"), "{}", out.stdout);
    assert!(
        lines[1].starts_with("web") && lines[1].contains("0/3"),
        "{}",
        out.stdout
    );

    let out = s.kubectl(&["get", "deploy", "-o", "wide"]).await;
    assert!(
        out.ok().contains("app:v1") && out.stdout.contains("app=web"),
        "{}",
        out.stdout
    );

    let out = s.kubectl(&["get", "deploy", "web", "-o", "yaml"]).await;
    let y: Value = serde_yaml::from_str(out.ok()).unwrap();
    assert_eq!(y["kind"], "Deployment");
    assert_eq!(y["metadata"]["generation"], 1);
    // Defaults as the real server fills them in.
    assert_eq!(y["spec"]["revisionHistoryLimit"], 10);
    assert_eq!(y["spec"]["strategy"]["rollingUpdate"]["maxSurge"], "25%");

    let out = s.kubectl(&["get", "deployments", "-o", "json"]).await;
    let j: Value = serde_json::from_str(out.ok()).unwrap();
    assert_eq!(j["kind"], "List");
    assert_eq!(j["items"][0]["metadata"]["name"], "web");

    let out = s
        .kubectl(&["get", "deploy", "-l", "app=web", "-o", "name"])
        .await;
    assert_eq!(out.ok().trim(), "deployment.apps/web");
    let out = s.kubectl(&["get", "deploy", "-l", "app=other"]).await;
    assert!(
        out.stderr
            .contains("No resources found in default namespace."),
        "{out:?}"
    );

    let out = s.kubectl(&["get", "deploy", "nope"]).await;
    assert_eq!(out.code, 1);
    assert_eq!(
        out.stderr.trim(),
        r#"Error from server (NotFound): deployments.apps "nope" not found"#
    );

    let out = s.kubectl(&["get", "all"]).await;
    assert!(out.ok().contains("deployment.apps/web"), "{}", out.stdout);

    let out = s.kubectl(&["describe", "deployment", "web"]).await;
    let text = out.ok();
    assert!(
        text.lines()
            .any(|l| l.starts_with("Name:") && l.ends_with(" web")),
        "{text}"
    );
    assert!(text.contains("3 desired"), "{text}");
    assert!(text.contains("8080/TCP"), "{text}");

    let out = s.kubectl(&["get", "namespaces"]).await;
    assert!(out.ok().contains("kube-system"), "{}", out.stdout);
    s.stop().await;
}

/// `kubectl api-resources` prints discovery back: one line per row of the
/// resource table (metrics.k8s.io's two kinds come from their own
/// handlers). The chapter "The API server" shows this output from
/// `book/src/generated/kubectl-api-resources.txt`, checked here, so a new
/// resource shows up in the book with it.
#[tokio::test(flavor = "multi_thread")]
async fn api_resources_lists_the_resource_table() {
    let s = TestServer::start().await;
    let out = s.kubectl(&["api-resources"]).await;
    let text = out.ok();
    for r in labs::apiserver::resources::RESOURCES {
        // autoscaling/v1 is served but not preferred: kubectl lists v2.
        if r.kind == "HorizontalPodAutoscaler" && r.version == "v1" {
            continue;
        }
        let api_version = r.api_version();
        assert!(
            text.lines().any(|l| {
                let words: Vec<&str> = l.split_whitespace().collect();
                words.first() == Some(&r.plural)
                    && words.contains(&api_version.as_str())
                    && words.last() == Some(&r.kind)
            }),
            "{} ({api_version}) missing:\n{text}",
            r.plural
        );
    }
    labs::lab::book::check_generated("kubectl-api-resources.txt", text)
        .unwrap_or_else(|e| panic!("{e}"));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn apply_client_side_and_server_side_twice() {
    let s = TestServer::start().await;
    let f = s.file("deployment.yaml", DEPLOYMENT_YAML);
    // Default --validate=strict: needs the server's /openapi/v3.
    assert_eq!(
        s.kubectl(&["apply", "-f", &f]).await.ok().trim(),
        "deployment.apps/web created"
    );
    let rv1 = Api::<Deployment>::default_namespaced(s.client())
        .get("web")
        .await
        .unwrap()
        .metadata
        .resource_version;
    assert_eq!(
        s.kubectl(&["apply", "-f", &f]).await.ok().trim(),
        "deployment.apps/web unchanged"
    );

    let f2 = s.file("deployment-v2.yaml", &deployment_v2());
    assert_eq!(
        s.kubectl(&["apply", "-f", &f2]).await.ok().trim(),
        "deployment.apps/web configured"
    );
    let d = Api::<Deployment>::default_namespaced(s.client())
        .get("web")
        .await
        .unwrap();
    assert_ne!(d.metadata.resource_version, rv1);
    let spec = d.spec.unwrap();
    assert_eq!(spec.replicas, Some(4));
    let c = &spec.template.spec.unwrap().containers[0];
    assert_eq!(c.image.as_deref(), Some("app:v2"));
    assert!(c.ports.is_none(), "the 3-way patch removed the ports");
    assert_eq!(c.env.as_ref().unwrap()[0].name, "MODE");
    assert_eq!(d.metadata.generation, Some(2));
    assert_eq!(
        s.kubectl(&["apply", "-f", &f2]).await.ok().trim(),
        "deployment.apps/web unchanged"
    );

    let ssa = s.file("ssa.yaml", &DEPLOYMENT_YAML.replace("web", "ssa"));
    let out = s.kubectl(&["apply", "--server-side", "-f", &ssa]).await;
    assert_eq!(out.ok().trim(), "deployment.apps/ssa serverside-applied");
    let rv = Api::<Deployment>::default_namespaced(s.client())
        .get("ssa")
        .await
        .unwrap()
        .metadata
        .resource_version;
    let out = s
        .kubectl(&["apply", "--server-side", "--force-conflicts", "-f", &ssa])
        .await;
    assert_eq!(out.ok().trim(), "deployment.apps/ssa serverside-applied");
    let again = Api::<Deployment>::default_namespaced(s.client())
        .get("ssa")
        .await
        .unwrap();
    assert_eq!(
        again.metadata.resource_version, rv,
        "the second apply is a no-op"
    );

    // A bad manifest gets the real server's kind of message.
    let bad = s.file(
        "bad.yaml",
        &DEPLOYMENT_YAML.replace("replicas: 3", "replicas: -1"),
    );
    let out = s.kubectl(&["apply", "-f", &bad]).await;
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains(
            r#"The Deployment "web" is invalid: spec.replicas: Invalid value: -1: must be greater than or equal to 0"#
        ),
        "{}",
        out.stderr
    );
    // Unknown fields: kubectl asks for strict validation, the server refuses.
    let typo = s.file(
        "typo.yaml",
        &DEPLOYMENT_YAML
            .replace("replicas: 3", "replicas: 3\n  replicaz: 3")
            .replace("web", "typo"),
    );
    let out = s.kubectl(&["apply", "-f", &typo]).await;
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains(r#"unknown field "spec.replicaz""#),
        "{}",
        out.stderr
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn annotate_scale_set_image_create() {
    let s = TestServer::start().await;
    let api = Api::<Deployment>::default_namespaced(s.client());
    let f = s.file("deployment.yaml", DEPLOYMENT_YAML);
    s.kubectl(&["create", "-f", &f]).await.ok();

    let out = s
        .kubectl(&[
            "annotate",
            "deployment/web",
            "kubernetes.io/change-cause=set image app:v2",
        ])
        .await;
    assert_eq!(out.ok().trim(), "deployment.apps/web annotated");
    let d = api.get("web").await.unwrap();
    assert_eq!(
        d.metadata.annotations.unwrap()["kubernetes.io/change-cause"],
        "set image app:v2"
    );
    assert_eq!(
        d.metadata.generation,
        Some(1),
        "metadata changes keep the generation"
    );

    let out = s
        .kubectl(&["set", "image", "deployment/web", "web=app:v2"])
        .await;
    assert_eq!(out.ok().trim(), "deployment.apps/web image updated");
    let d = api.get("web").await.unwrap();
    assert_eq!(d.metadata.generation, Some(2));
    let spec = d.spec.unwrap();
    let c = &spec.template.spec.unwrap().containers[0];
    assert_eq!(c.image.as_deref(), Some("app:v2"));
    assert_eq!(
        c.ports.as_ref().unwrap()[0].container_port,
        8080,
        "strategic merge kept the ports"
    );

    let out = s
        .kubectl(&["scale", "deployment/web", "--replicas=5"])
        .await;
    assert_eq!(out.ok().trim(), "deployment.apps/web scaled");
    let d = api.get("web").await.unwrap();
    assert_eq!(d.spec.unwrap().replicas, Some(5));
    assert_eq!(d.metadata.generation, Some(3));

    // kubectl >= 1.32 sends this one as protobuf.
    let out = s
        .kubectl(&[
            "create",
            "deployment",
            "api",
            "--image=app:v1",
            "--replicas=2",
        ])
        .await;
    assert_eq!(out.ok().trim(), "deployment.apps/api created");
    let d = api.get("api").await.unwrap();
    assert_eq!(d.spec.as_ref().unwrap().replicas, Some(2));
    assert_eq!(d.metadata.labels.unwrap()["app"], "api");
    let out = s
        .kubectl(&["create", "deployment", "api", "--image=app:v1"])
        .await;
    assert_eq!(out.code, 1);
    assert!(
        out.stderr
            .contains(r#"deployments.apps "api" already exists"#),
        "{}",
        out.stderr
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn watch_sees_later_changes() {
    let s = TestServer::start().await;
    let pods = Api::<Pod>::default_namespaced(s.client());
    let pod = |name: &str| -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": name, "labels": {"app": "web"}},
            "spec": {"containers": [{"name": "web", "image": "app:v1"}]},
        }))
        .unwrap()
    };
    pods.create(&PostParams::default(), &pod("first"))
        .await
        .unwrap();

    // `get -w` with a label selector: the list, then the watch from the
    // list's resourceVersion.
    let mut child = s
        .kubectl_command(&["get", "pods", "-l", "app=web", "-w"])
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let seen = read_until(&mut stdout, "first", Duration::from_secs(20)).await;
    assert!(seen.contains("first"), "{seen}");
    pods.create(&PostParams::default(), &pod("second"))
        .await
        .unwrap();
    let mut other = pod("other");
    other.metadata.labels = None;
    pods.create(&PostParams::default(), &other).await.unwrap();
    let seen = read_until(&mut stdout, "second", Duration::from_secs(20)).await;
    assert!(seen.contains("second"), "{seen}");
    assert!(!seen.contains("other"));
    child.kill().await.unwrap();

    // `get NAME -w`: a resourceVersion=0 watch whose synthetic ADDED kubectl
    // swallows; the next change prints.
    let f = s.file("deployment.yaml", DEPLOYMENT_YAML);
    s.kubectl(&["create", "-f", &f]).await.ok();
    let mut child = s
        .kubectl_command(&[
            "get",
            "deploy",
            "web",
            "-w",
            "-o",
            "jsonpath={.spec.replicas}{\"\\n\"}",
        ])
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let seen = read_until(&mut stdout, "3\n", Duration::from_secs(20)).await;
    assert_eq!(seen, "3\n");
    // kubectl starts its watch only after printing; a change made before
    // the watch is established lands in the swallowed synthetic ADDED. So
    // keep changing until a change prints (the first one, normally).
    let deployments = Api::<Deployment>::default_namespaced(s.client());
    let mut printed = String::new();
    for replicas in 7..30 {
        deployments
            .patch(
                "web",
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"replicas": replicas}})),
            )
            .await
            .unwrap();
        printed = read_until(&mut stdout, "\n", Duration::from_secs(1)).await;
        if !printed.is_empty() {
            assert_eq!(printed, format!("{replicas}\n"));
            break;
        }
    }
    assert!(!printed.is_empty(), "kubectl get -w printed a later change");
    child.kill().await.unwrap();
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn delete_pod() {
    let s = TestServer::start().await;
    let pods = Api::<Pod>::default_namespaced(s.client());
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "lonely"},
        "spec": {"containers": [{"name": "web", "image": "app:v1"}]},
    }))
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
    // Not on a node: nothing to stop, so the delete is immediate.
    let out = s.kubectl(&["delete", "pod", "lonely"]).await;
    assert_eq!(out.deleted(), r#"pod "lonely" deleted"#);
    assert!(pods.get_opt("lonely").await.unwrap().is_none());

    // On a node: graceful. The server only marks it; a kubelet would finish.
    let mut bound = pod.clone();
    bound.metadata.name = Some("bound".into());
    bound.spec.as_mut().unwrap().node_name = Some("node-1".into());
    pods.create(&PostParams::default(), &bound).await.unwrap();
    let out = s.kubectl(&["delete", "pod", "bound", "--wait=false"]).await;
    assert_eq!(out.deleted(), r#"pod "bound" deleted"#);
    let p = pods.get("bound").await.unwrap();
    assert!(p.metadata.deletion_timestamp.is_some());
    assert_eq!(p.metadata.deletion_grace_period_seconds, Some(30));
    let out = s.kubectl(&["get", "pods"]).await;
    assert!(out.ok().contains("Terminating"), "{}", out.stdout);
    // The kubelet's final delete: grace period 0.
    let out = s
        .kubectl(&["delete", "pod", "bound", "--grace-period=0", "--force"])
        .await;
    assert!(
        out.ok().contains(r#"pod "bound" force deleted"#),
        "{}",
        out.stdout
    );
    assert!(pods.get_opt("bound").await.unwrap().is_none());
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn nodes_services_pods_and_secrets() {
    let s = TestServer::start().await;
    let manifests = r#"
apiVersion: v1
kind: Node
metadata:
  name: node-1
  labels:
    node-role.kubernetes.io/worker: ""
status:
  conditions:
  - type: Ready
    status: "True"
  nodeInfo: {kubeletVersion: v1.33.1, osImage: Labs, kernelVersion: "6.1", containerRuntimeVersion: "simulated://1",
             machineID: "", systemUUID: "", bootID: "", kubeProxyVersion: "", operatingSystem: linux, architecture: amd64}
  addresses:
  - {type: InternalIP, address: 127.0.0.1}
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector: {app: web}
  ports:
  - {port: 80, targetPort: 8080}
---
apiVersion: v1
kind: Pod
metadata:
  name: p1
  labels: {app: web}
spec:
  containers:
  - {name: web, image: "app:v1"}
---
apiVersion: v1
kind: Secret
metadata:
  name: db
stringData:
  password: s3cret
"#;
    let out = s
        .kubectl_stdin(&["apply", "-f", "-"], Some(manifests))
        .await;
    assert_eq!(out.ok().lines().count(), 4, "{}", out.stdout);
    let out = s.kubectl(&["get", "nodes", "-o", "wide"]).await;
    let row = out.ok().lines().nth(1).unwrap().to_string();
    for cell in [
        "node-1",
        "Ready",
        "worker",
        "v1.33.1",
        "127.0.0.1",
        "Labs",
        "simulated://1",
    ] {
        assert!(row.contains(cell), "{row}");
    }
    let out = s.kubectl(&["get", "svc", "web"]).await;
    assert!(out.ok().contains("ClusterIP   127.2.1.1"), "{}", out.stdout);
    let out = s.kubectl(&["get", "pods", "-A", "--show-labels"]).await;
    let row = out.ok().lines().nth(1).unwrap().to_string();
    for cell in ["default", "p1", "0/1", "Pending", "app=web"] {
        assert!(row.contains(cell), "{row}");
    }
    let out = s.kubectl(&["describe", "pod", "p1"]).await;
    assert!(
        out.ok().contains("QoS Class:        BestEffort"),
        "{}",
        out.stdout
    );
    // stringData is written into data, base64-encoded.
    let out = s
        .kubectl(&["get", "secret", "db", "-o", "jsonpath={.data.password}"])
        .await;
    assert_eq!(out.ok(), "czNjcmV0");
    s.stop().await;
}
