//! The rows and columns `kubectl get` prints, per kind, checked against
//! what upstream's printers render for the same objects.

use super::*;

fn now() -> Timestamp {
    "2026-01-01T12:00:00Z".parse().unwrap()
}

/// A creation timestamp `secs` seconds before `now()`.
fn ago(secs: i64) -> Value {
    json!(
        now()
            .checked_sub(k8s_openapi::jiff::SignedDuration::from_secs(secs))
            .unwrap()
            .to_string()
    )
}

#[test]
fn human_durations_like_upstream() {
    let cases = [
        (-5, "<invalid>"),
        (-1, "0s"),
        (0, "0s"),
        (45, "45s"),
        (119, "119s"),
        (120, "2m"),
        (150, "2m30s"),
        (599, "9m59s"),
        (600, "10m"),
        (3 * 3600 - 1, "179m"),
        (3 * 3600, "3h"),
        (5 * 3600 + 600, "5h10m"),
        (8 * 3600, "8h"),
        (47 * 3600, "47h"),
        (48 * 3600, "2d"),
        (3 * 86400, "3d"),
        (3 * 86400 + 5 * 3600, "3d5h"),
        (8 * 86400, "8d"),
        (729 * 86400, "729d"),
        (730 * 86400, "2y"),
        (800 * 86400, "2y70d"),
        (8 * 365 * 86400, "8y"),
    ];
    for (secs, want) in cases {
        assert_eq!(human_duration(secs), want, "{secs}s");
    }
}

#[test]
fn deployment_table() {
    let d = json!({
        "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"},
            "creationTimestamp": ago(6), "resourceVersion": "120"},
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
            "template": {"spec": {"containers": [{"name": "web", "image": "app:v1"}, {"name": "proxy", "image": "envoy:1"}]}}},
        "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2},
    });
    let t = table("Deployment", std::slice::from_ref(&d), "126", now());
    assert_eq!(t["kind"], "Table");
    assert_eq!(t["apiVersion"], "meta.k8s.io/v1");
    assert_eq!(t["metadata"], json!({"resourceVersion": "126"}));
    let names: Vec<&str> = t["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "Name",
            "Ready",
            "Up-to-date",
            "Available",
            "Age",
            "Containers",
            "Images",
            "Selector"
        ]
    );
    assert_eq!(t["columnDefinitions"][0]["format"], "name");
    assert_eq!(t["columnDefinitions"][5]["priority"], 1);
    assert_eq!(
        t["rows"][0]["cells"],
        json!([
            "web",
            "2/3",
            3,
            2,
            "6s",
            "web,proxy",
            "app:v1,envoy:1",
            "app=web"
        ])
    );
    assert_eq!(
        t["rows"][0]["object"],
        json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": d["metadata"]})
    );
    // A fresh deployment without status.
    let fresh = json!({"metadata": {"name": "api"}, "spec": {"replicas": 2}});
    let t = table("Deployment", &[fresh], "1", now());
    assert_eq!(
        t["rows"][0]["cells"],
        json!(["api", "0/2", 0, 0, "<unknown>", "", "", ""])
    );
    // No objects: still a table with the columns.
    let t = table("Deployment", &[], "7", now());
    assert_eq!(t["rows"], json!([]));
}

#[test]
fn replica_set_table() {
    let rs = json!({"metadata": {"name": "web-5d4f", "creationTimestamp": ago(3600)},
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web", "pod-template-hash": "5d4f"}},
            "template": {"spec": {"containers": [{"name": "web", "image": "app:v1"}]}}},
        "status": {"replicas": 3, "readyReplicas": 1}});
    let t = table("ReplicaSet", &[rs], "9", now());
    assert_eq!(t["columnDefinitions"][1]["type"], "integer");
    assert_eq!(
        t["rows"][0]["cells"],
        json!([
            "web-5d4f",
            3,
            3,
            1,
            "60m",
            "web",
            "app:v1",
            "app=web,pod-template-hash=5d4f"
        ])
    );
}

fn pod(status: Value) -> Value {
    json!({"metadata": {"name": "web-1", "creationTimestamp": ago(300)},
        "spec": {"containers": [{"name": "web", "image": "app:v1"}]},
        "status": status})
}

fn pod_cells_of(p: Value) -> Value {
    table("Pod", &[p], "1", now())["rows"][0]["cells"].clone()
}

#[test]
fn pod_table() {
    let running = pod(
        json!({"phase": "Running", "podIP": "127.1.0.5", "podIPs": [{"ip": "127.1.0.5"}],
        "containerStatuses": [{"name": "web", "ready": true, "restartCount": 0, "state": {"running": {"startedAt": "x"}}}]}),
    );
    let mut with_node = running.clone();
    with_node["spec"]["nodeName"] = json!("node-1");
    assert_eq!(
        pod_cells_of(with_node),
        json!([
            "web-1",
            "1/1",
            "Running",
            "0",
            "5m",
            "127.1.0.5",
            "node-1",
            "<none>",
            "<none>"
        ])
    );

    let pending = pod(json!({"phase": "Pending"}));
    assert_eq!(
        pod_cells_of(pending),
        json!([
            "web-1", "0/1", "Pending", "0", "5m", "<none>", "<none>", "<none>", "<none>"
        ])
    );

    let creating = pod(
        json!({"phase": "Pending", "containerStatuses": [{"name": "web", "ready": false, "restartCount": 0,
        "state": {"waiting": {"reason": "ContainerCreating"}}}]}),
    );
    assert_eq!(pod_cells_of(creating)[2], "ContainerCreating");

    let backoff = pod(
        json!({"phase": "Pending", "containerStatuses": [{"name": "web", "ready": false, "restartCount": 0,
        "state": {"waiting": {"reason": "ImagePullBackOff", "message": "Back-off pulling image"}}}]}),
    );
    assert_eq!(pod_cells_of(backoff)[2], "ImagePullBackOff");

    let crashing = pod(
        json!({"phase": "Running", "containerStatuses": [{"name": "web", "ready": false, "restartCount": 2,
        "state": {"waiting": {"reason": "CrashLoopBackOff"}},
        "lastState": {"terminated": {"exitCode": 1, "reason": "Error", "finishedAt": ago(300).as_str().unwrap()}}}]}),
    );
    let cells = pod_cells_of(crashing);
    assert_eq!(cells[2], "CrashLoopBackOff");
    assert_eq!(cells[3], "2 (5m ago)");

    let exited = pod(
        json!({"phase": "Failed", "containerStatuses": [{"name": "web", "restartCount": 0,
        "state": {"terminated": {"exitCode": 137, "signal": 0}}}]}),
    );
    let t = table("Pod", &[exited], "1", now());
    assert_eq!(t["rows"][0]["cells"][2], "ExitCode:137");
    assert_eq!(t["rows"][0]["conditions"][0]["reason"], "Failed");

    let mut terminating = running.clone();
    terminating["metadata"]["deletionTimestamp"] = ago(1);
    assert_eq!(pod_cells_of(terminating)[2], "Terminating");

    let evicted = pod(json!({"phase": "Failed", "reason": "Evicted"}));
    assert_eq!(pod_cells_of(evicted)[2], "Evicted");
}

#[test]
fn pod_init_containers() {
    let mut p = pod(json!({"phase": "Pending",
        "initContainerStatuses": [{"name": "init", "restartCount": 0, "state": {"waiting": {"reason": "PodInitializing"}}}]}));
    p["spec"]["initContainers"] = json!([{"name": "init", "image": "busybox:1"}]);
    assert_eq!(pod_cells_of(p.clone())[2], "Init:0/1");
    p["status"]["initContainerStatuses"][0]["state"] =
        json!({"terminated": {"exitCode": 1, "reason": "Error"}});
    assert_eq!(pod_cells_of(p.clone())[2], "Init:Error");
    // A sidecar (restartable init container) counts towards READY.
    let mut p = pod(json!({"phase": "Running",
        "initContainerStatuses": [{"name": "proxy", "restartCount": 1, "started": true, "ready": true,
            "state": {"running": {}}, "lastState": {"terminated": {"exitCode": 1, "finishedAt": ago(120).as_str().unwrap()}}}],
        "containerStatuses": [{"name": "web", "ready": true, "restartCount": 0, "state": {"running": {}}}],
        "conditions": [{"type": "Initialized", "status": "True"}]}));
    p["spec"]["initContainers"] =
        json!([{"name": "proxy", "image": "envoy:1", "restartPolicy": "Always"}]);
    let cells = pod_cells_of(p);
    assert_eq!(cells[1], "2/2");
    assert_eq!(cells[2], "Running");
    assert_eq!(cells[3], "1 (2m ago)");
}

#[test]
fn service_table() {
    let svc = |spec: Value| json!({"metadata": {"name": "web", "creationTimestamp": ago(45)}, "spec": spec});
    let t = table(
        "Service",
        &[
            svc(
                json!({"type": "ClusterIP", "clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"],
            "ports": [{"port": 80, "protocol": "TCP"}], "selector": {"app": "web"}}),
            ),
            svc(json!({"type": "NodePort", "clusterIP": "10.96.0.11",
            "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}]})),
            svc(
                json!({"type": "LoadBalancer", "clusterIP": "10.96.0.12", "ports": [{"port": 443, "protocol": "TCP"}]}),
            ),
            svc(json!({"type": "ExternalName", "externalName": "db.example.com"})),
        ],
        "3",
        now(),
    );
    assert_eq!(
        t["rows"][0]["cells"],
        json!([
            "web",
            "ClusterIP",
            "10.96.0.10",
            "<none>",
            "80/TCP",
            "45s",
            "app=web"
        ])
    );
    assert_eq!(
        t["rows"][1]["cells"],
        json!([
            "web",
            "NodePort",
            "10.96.0.11",
            "<none>",
            "80:30080/TCP,53/UDP",
            "45s",
            "<none>"
        ])
    );
    assert_eq!(t["rows"][2]["cells"][3], "<pending>");
    assert_eq!(
        t["rows"][3]["cells"],
        json!([
            "web",
            "ExternalName",
            "<none>",
            "db.example.com",
            "<none>",
            "45s",
            "<none>"
        ])
    );
}

#[test]
fn node_table() {
    let node = json!({"metadata": {"name": "node-1", "creationTimestamp": ago(3 * 86400),
            "labels": {"node-role.kubernetes.io/control-plane": "", "node-role.kubernetes.io/worker": "", "kubernetes.io/hostname": "node-1"}},
        "spec": {"unschedulable": true},
        "status": {"conditions": [{"type": "MemoryPressure", "status": "False"}, {"type": "Ready", "status": "True"}],
            "addresses": [{"type": "InternalIP", "address": "127.0.0.2"}, {"type": "Hostname", "address": "node-1"}],
            "nodeInfo": {"kubeletVersion": "v1.33.1", "osImage": "Debian", "kernelVersion": "6.1", "containerRuntimeVersion": "labs://0.1"}}});
    let t = table("Node", &[node], "5", now());
    assert_eq!(
        t["rows"][0]["cells"],
        json!([
            "node-1",
            "Ready,SchedulingDisabled",
            "control-plane,worker",
            "3d",
            "v1.33.1",
            "127.0.0.2",
            "<none>",
            "Debian",
            "6.1",
            "labs://0.1"
        ])
    );
    let bare = json!({"metadata": {"name": "n2"}, "status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}});
    let t = table("Node", &[bare], "5", now());
    assert_eq!(
        t["rows"][0]["cells"],
        json!([
            "n2",
            "NotReady",
            "<none>",
            "<unknown>",
            "",
            "<none>",
            "<none>",
            "<unknown>",
            "<unknown>",
            "<unknown>"
        ])
    );
}

#[test]
fn other_tables() {
    let ns = json!({"metadata": {"name": "default", "creationTimestamp": ago(10)}, "status": {"phase": "Active"}});
    assert_eq!(
        table("Namespace", &[ns], "1", now())["rows"][0]["cells"],
        json!(["default", "Active", "10s"])
    );
    let cm = json!({"metadata": {"name": "cfg", "creationTimestamp": ago(10)}, "data": {"a": "1", "b": "2"}, "binaryData": {"c": ""}});
    assert_eq!(
        table("ConfigMap", &[cm], "1", now())["rows"][0]["cells"],
        json!(["cfg", 3, "10s"])
    );
    let secret = json!({"metadata": {"name": "db", "creationTimestamp": ago(10)}, "type": "Opaque", "data": {"password": "cGFzcw=="}});
    assert_eq!(
        table("Secret", &[secret], "1", now())["rows"][0]["cells"],
        json!(["db", "Opaque", 1, "10s"])
    );
    let ep = json!({"metadata": {"name": "web"}, "subsets": [{"addresses": [{"ip": "127.1.0.1"}, {"ip": "127.1.0.2"}, {"ip": "127.1.0.3"}, {"ip": "127.1.0.4"}], "ports": [{"port": 8080}]}]});
    assert_eq!(
        table("Endpoints", &[ep], "1", now())["rows"][0]["cells"][1],
        "127.1.0.1:8080,127.1.0.2:8080,127.1.0.3:8080 + 1 more..."
    );
    let ev = json!({"metadata": {"name": "web.1"}, "type": "Normal", "reason": "ScalingReplicaSet",
        "involvedObject": {"kind": "Deployment", "name": "web"}, "source": {"component": "deployment-controller"},
        "message": "Scaled up replica set web-5d4f from 0 to 3 ", "firstTimestamp": ago(120), "lastTimestamp": ago(60), "count": 2});
    assert_eq!(
        table("Event", &[ev], "1", now())["rows"][0]["cells"],
        json!([
            "60s",
            "Normal",
            "ScalingReplicaSet",
            "deployment/web",
            "",
            "deployment-controller",
            "Scaled up replica set web-5d4f from 0 to 3",
            "2m",
            2,
            "web.1"
        ])
    );
    let lease = json!({"metadata": {"name": "node-1", "creationTimestamp": ago(10)},
        "spec": {"holderIdentity": "node-1", "leaseDurationSeconds": 40}});
    assert_eq!(
        table("Lease", &[lease], "1", now())["rows"][0]["cells"],
        json!(["node-1", "node-1", "10s"])
    );
    let widget = json!({"metadata": {"name": "w", "creationTimestamp": ago(5)}});
    let t = table("Widget", &[widget], "1", now());
    assert_eq!(t["rows"][0]["cells"], json!(["w", "5s"]));
    assert_eq!(t["columnDefinitions"].as_array().unwrap().len(), 2);
}
