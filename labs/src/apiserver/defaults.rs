//! Defaulting: the values the API server fills in before it stores an object.
//!
//! Why does this matter enough for its own module? Because kubectl *compares
//! objects*. `kubectl rollout history/undo` finds a Deployment's current
//! ReplicaSet by comparing the Deployment's pod template with each
//! ReplicaSet's template, and the Deployment controller does the same to
//! decide whether a rollout is needed. Both templates pass through this
//! module, so they must come out identical: defaulting has to be
//! *deterministic* and *idempotent* (defaulting a defaulted object changes
//! nothing). Every function here only fills a field that is absent (or
//! `null`); it never overwrites a value.
//!
//! The values are upstream's (`pkg/apis/core/v1/defaults.go`,
//! `pkg/apis/apps/v1/defaults.go`), so `kubectl get -o yaml` shows the same
//! fields as on a real cluster. Left out on purpose, because upstream adds
//! them in *admission plugins* or the registry rather than in defaulting:
//! `serviceAccountName` (ServiceAccount admission, in `handlers/create.rs`),
//! `priority`/`preemptionPolicy` (Priority admission), Service
//! `clusterIP` allocation, and the namespace `kubernetes` finalizer (which
//! only makes sense with a namespace controller to remove it). One
//! admission plugin *is* here, [`default_toleration_seconds`], because the
//! node lifecycle controller's evictions depend on it.

use serde_json::{Map, Value, json};

/// Fills in Kubernetes' defaults for an object of `kind`, in place.
///
/// Unknown kinds are left alone. Objects that are not JSON objects (which
/// decoding would already have rejected) are left alone too.
pub fn apply_defaults(kind: &str, obj: &mut Value) {
    let Some(obj) = obj.as_object_mut() else {
        return;
    };
    match kind {
        "Pod" => default_pod(obj),
        "Deployment" => default_deployment(obj),
        "ReplicaSet" => default_replica_set(obj),
        "Service" => default_service(obj),
        "Namespace" => default_namespace(obj),
        "Node" => default_node(obj),
        "Secret" => {
            set_default(obj, "type", json!("Opaque"));
        }
        "Endpoints" => {
            for subset in list_mut(obj, "subsets") {
                for port in list_mut(subset, "ports") {
                    set_default(port, "protocol", json!("TCP"));
                }
            }
        }
        "PodTemplate" => {
            if let Some(template) = child(obj, "template") {
                default_pod_template(template);
            }
        }
        "HorizontalPodAutoscaler" => default_hpa(obj),
        _ => {}
    }
}

// ANCHOR: default_hpa
/// autoscaling/v2's `SetDefaults_HorizontalPodAutoscaler`: at least one
/// replica, and without metrics the classic target — 80 % of the pods'
/// CPU requests. `behavior` is filled in only when it is given (then both
/// directions get every missing field; the scale-down window stays unset,
/// as the controller takes it from its own flag); an HPA without it keeps
/// the controller's older scaling path.
fn default_hpa(obj: &mut Map<String, Value>) {
    let Some(spec) = child(obj, "spec") else {
        return;
    };
    set_default(spec, "minReplicas", json!(1));
    let no_metrics = spec
        .get("metrics")
        .and_then(Value::as_array)
        .is_none_or(Vec::is_empty);
    if no_metrics {
        spec.insert(
            "metrics".into(),
            json!([{"type": "Resource", "resource": {"name": "cpu",
                "target": {"type": "Utilization", "averageUtilization": 80}}}]),
        );
    }
    // Not `child`: an absent `behavior` must stay absent.
    if let Some(behavior) = spec.get_mut("behavior").and_then(Value::as_object_mut) {
        let up = json!({"stabilizationWindowSeconds": 0, "selectPolicy": "Max", "policies": [
            {"type": "Pods", "value": 4, "periodSeconds": 15},
            {"type": "Percent", "value": 100, "periodSeconds": 15}]});
        let down = json!({"selectPolicy": "Max", "policies": [
            {"type": "Percent", "value": 100, "periodSeconds": 15}]});
        for (direction, defaults) in [("scaleUp", up), ("scaleDown", down)] {
            let Some(rules) = child(behavior, direction) else {
                continue;
            };
            for (k, v) in defaults.as_object().expect("an object") {
                set_default(rules, k, v.clone());
            }
        }
    }
}
// ANCHOR_END: default_hpa

// ANCHOR: default_toleration_seconds
/// The DefaultTolerationSeconds admission plugin, on pod creation: a pod
/// that does not already tolerate `node.kubernetes.io/not-ready` or
/// `node.kubernetes.io/unreachable` with effect NoExecute gets a toleration
/// for it limited to `tolerationSeconds`. So when its node stops reporting
/// (and the node lifecycle controller taints it), the pod is not evicted at
/// once — a network blip should not reschedule everything — but after that
/// long (300 s upstream).
///
/// Upstream runs this as admission, not defaulting: it happens only on
/// create, and the seconds are an API server flag. It is here because it
/// edits the object the same way defaulting does.
pub fn default_toleration_seconds(
    pod: &mut Value,
    not_ready_seconds: i64,
    unreachable_seconds: i64,
) {
    let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    set_default(spec, "tolerations", json!([]));
    let Some(tolerations) = spec.get_mut("tolerations").and_then(Value::as_array_mut) else {
        return;
    };
    // A toleration with an empty key or effect matches any key or effect.
    let tolerates = |tolerations: &[Value], key: &str| {
        tolerations.iter().any(|t| {
            let field = |f: &str| t.get(f).and_then(Value::as_str).unwrap_or("");
            (field("key") == key || field("key").is_empty())
                && (field("effect") == "NoExecute" || field("effect").is_empty())
        })
    };
    for (key, seconds) in [
        ("node.kubernetes.io/not-ready", not_ready_seconds),
        ("node.kubernetes.io/unreachable", unreachable_seconds),
    ] {
        if !tolerates(tolerations, key) {
            tolerations.push(json!({
                "key": key,
                "operator": "Exists",
                "effect": "NoExecute",
                "tolerationSeconds": seconds,
            }));
        }
    }
}
// ANCHOR_END: default_toleration_seconds

/// Sets `key` to `value` unless it already holds a non-null value.
fn set_default(obj: &mut Map<String, Value>, key: &str, value: Value) {
    match obj.get(key) {
        Some(v) if !v.is_null() => {}
        _ => {
            obj.insert(key.to_string(), value);
        }
    }
}

/// The object at `key`, created as `{}` if absent or null. Returns `None`
/// when the field holds something other than an object (validation reports
/// that; defaulting must not panic on bad input).
fn child<'a>(obj: &'a mut Map<String, Value>, key: &str) -> Option<&'a mut Map<String, Value>> {
    set_default(obj, key, json!({}));
    obj.get_mut(key).and_then(Value::as_object_mut)
}

/// The object elements of the list at `key` (nothing if absent).
fn list_mut<'a>(
    obj: &'a mut Map<String, Value>,
    key: &str,
) -> impl Iterator<Item = &'a mut Map<String, Value>> {
    obj.get_mut(key)
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object_mut)
}

fn default_deployment(obj: &mut Map<String, Value>) {
    let Some(spec) = child(obj, "spec") else {
        return;
    };
    set_default(spec, "replicas", json!(1));
    if let Some(strategy) = child(spec, "strategy") {
        set_default(strategy, "type", json!("RollingUpdate"));
        // Only a RollingUpdate strategy gets the 25%/25% block: giving one
        // to Recreate would make the object invalid ("may not be specified
        // when strategy `type` is 'Recreate'").
        if strategy.get("type") == Some(&json!("RollingUpdate"))
            && let Some(rolling) = child(strategy, "rollingUpdate")
        {
            set_default(rolling, "maxUnavailable", json!("25%"));
            set_default(rolling, "maxSurge", json!("25%"));
        }
    }
    set_default(spec, "revisionHistoryLimit", json!(10));
    set_default(spec, "progressDeadlineSeconds", json!(600));
    if let Some(template) = child(spec, "template") {
        default_pod_template(template);
    }
}

fn default_replica_set(obj: &mut Map<String, Value>) {
    let Some(spec) = child(obj, "spec") else {
        return;
    };
    set_default(spec, "replicas", json!(1));
    if let Some(template) = child(spec, "template") {
        default_pod_template(template);
    }
}

/// A pod template (inside a Deployment or ReplicaSet) gets the pod *spec*
/// defaults, but not the Pod-only ones (`enableServiceLinks`, requests from
/// limits): a template is not a pod yet.
fn default_pod_template(template: &mut Map<String, Value>) {
    if let Some(spec) = child(template, "spec") {
        default_pod_spec(spec);
    }
}

fn default_pod(obj: &mut Map<String, Value>) {
    let Some(spec) = child(obj, "spec") else {
        return;
    };
    default_pod_spec(spec);
    // Pod-only defaults (upstream `SetDefaults_Pod`).
    set_default(spec, "enableServiceLinks", json!(true));
    for list in ["containers", "initContainers"] {
        for container in list_mut(spec, list) {
            requests_from_limits(container);
        }
    }
    if spec.get("hostNetwork") == Some(&json!(true)) {
        for list in ["containers", "initContainers"] {
            for container in list_mut(spec, list) {
                for port in list_mut(container, "ports") {
                    if let Some(p) = port.get("containerPort").cloned() {
                        set_default(port, "hostPort", p);
                    }
                }
            }
        }
    }
}

/// A container that states limits but no requests gets requests equal to
/// its limits (a pod is scheduled by its requests).
fn requests_from_limits(container: &mut Map<String, Value>) {
    let Some(resources) = container
        .get_mut("resources")
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    let Some(limits) = resources.get("limits").and_then(Value::as_object).cloned() else {
        return;
    };
    if let Some(requests) = child(resources, "requests") {
        for (name, quantity) in limits {
            set_default(requests, &name, quantity);
        }
    }
}

fn default_pod_spec(spec: &mut Map<String, Value>) {
    // `serviceAccount` is the deprecated name of `serviceAccountName`; the
    // v1 conversion fills each from the other, so both always agree.
    if let Some(sa) = spec
        .get("serviceAccount")
        .filter(|v| v.is_string())
        .cloned()
    {
        set_default(spec, "serviceAccountName", sa);
    }
    if let Some(sa) = spec
        .get("serviceAccountName")
        .filter(|v| v.is_string())
        .cloned()
    {
        spec.insert("serviceAccount".into(), sa);
    }
    set_default(spec, "dnsPolicy", json!("ClusterFirst"));
    set_default(spec, "restartPolicy", json!("Always"));
    set_default(spec, "securityContext", json!({}));
    set_default(spec, "terminationGracePeriodSeconds", json!(30));
    set_default(spec, "schedulerName", json!("default-scheduler"));
    for list in ["containers", "initContainers", "ephemeralContainers"] {
        for container in list_mut(spec, list) {
            default_container(container);
        }
    }
    for volume in list_mut(spec, "volumes") {
        default_volume(volume);
    }
}

/// `Always` for `:latest` or an untagged image (the tag may move, so the
/// node must ask the registry every time), `IfNotPresent` otherwise.
pub fn default_image_pull_policy(image: &str) -> &'static str {
    // A digest pins the image: `app@sha256:...` has no tag but never moves.
    let (name, digest) = match image.split_once('@') {
        Some((name, _)) => (name, true),
        None => (image, false),
    };
    // The tag follows the last ':' after the last '/', so that a registry
    // port (`localhost:5000/app`) is not mistaken for a tag.
    let last_part = name.rsplit('/').next().unwrap_or(name);
    let tag = last_part.split_once(':').map(|(_, tag)| tag);
    match tag {
        Some("latest") => "Always",
        None if !digest => "Always",
        _ => "IfNotPresent",
    }
}

fn default_container(c: &mut Map<String, Value>) {
    let image = c
        .get("image")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    set_default(
        c,
        "imagePullPolicy",
        json!(default_image_pull_policy(&image)),
    );
    set_default(c, "terminationMessagePath", json!("/dev/termination-log"));
    set_default(c, "terminationMessagePolicy", json!("File"));
    // `resources` is a struct, not a pointer, in Go: it is always printed,
    // as `{}` when empty. Without it our templates would differ from
    // what kubectl (built from the Go types) computes.
    set_default(c, "resources", json!({}));
    for port in list_mut(c, "ports") {
        set_default(port, "protocol", json!("TCP"));
    }
    for env in list_mut(c, "env") {
        if let Some(field_ref) = env
            .get_mut("valueFrom")
            .and_then(Value::as_object_mut)
            .and_then(|v| v.get_mut("fieldRef"))
            .and_then(Value::as_object_mut)
        {
            set_default(field_ref, "apiVersion", json!("v1"));
        }
    }
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        if let Some(p) = c.get_mut(probe).and_then(Value::as_object_mut) {
            default_probe(p);
        }
    }
}

fn default_probe(p: &mut Map<String, Value>) {
    set_default(p, "timeoutSeconds", json!(1));
    set_default(p, "periodSeconds", json!(10));
    set_default(p, "successThreshold", json!(1));
    set_default(p, "failureThreshold", json!(3));
    if let Some(http) = p.get_mut("httpGet").and_then(Value::as_object_mut) {
        set_default(http, "path", json!("/"));
        set_default(http, "scheme", json!("HTTP"));
    }
}

/// Volume sources a volume may name; a volume with none of them is an
/// `emptyDir`, as upstream defaults it.
const VOLUME_SOURCES: &[&str] = &[
    "hostPath",
    "emptyDir",
    "gcePersistentDisk",
    "awsElasticBlockStore",
    "gitRepo",
    "secret",
    "nfs",
    "iscsi",
    "glusterfs",
    "persistentVolumeClaim",
    "rbd",
    "flexVolume",
    "cinder",
    "cephfs",
    "flocker",
    "downwardAPI",
    "fc",
    "azureFile",
    "configMap",
    "vsphereVolume",
    "quobyte",
    "azureDisk",
    "photonPersistentDisk",
    "projected",
    "portworxVolume",
    "scaleIO",
    "storageos",
    "csi",
    "ephemeral",
    "image",
];

fn default_volume(v: &mut Map<String, Value>) {
    if !VOLUME_SOURCES
        .iter()
        .any(|s| v.get(*s).is_some_and(|x| !x.is_null()))
    {
        v.insert("emptyDir".into(), json!({}));
    }
    // 0644, the mode of projected files unless the user says otherwise.
    for source in ["configMap", "secret", "projected", "downwardAPI"] {
        if let Some(s) = v.get_mut(source).and_then(Value::as_object_mut) {
            set_default(s, "defaultMode", json!(420));
        }
    }
    if let Some(h) = v.get_mut("hostPath").and_then(Value::as_object_mut) {
        set_default(h, "type", json!(""));
    }
}

fn default_service(obj: &mut Map<String, Value>) {
    let Some(spec) = child(obj, "spec") else {
        return;
    };
    set_default(spec, "sessionAffinity", json!("None"));
    set_default(spec, "type", json!("ClusterIP"));
    let ty = spec
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    for port in list_mut(spec, "ports") {
        set_default(port, "protocol", json!("TCP"));
        // targetPort defaults to the service port: traffic to :80 goes to
        // the pod's :80 unless told otherwise.
        let unset = matches!(port.get("targetPort"), None | Some(Value::Null))
            || port.get("targetPort") == Some(&json!(0))
            || port.get("targetPort") == Some(&json!(""));
        if unset && let Some(p) = port.get("port").cloned() {
            port.insert("targetPort".into(), p);
        }
    }
    if matches!(ty.as_str(), "NodePort" | "LoadBalancer") {
        set_default(spec, "externalTrafficPolicy", json!("Cluster"));
    }
    if matches!(ty.as_str(), "ClusterIP" | "NodePort" | "LoadBalancer") {
        set_default(spec, "internalTrafficPolicy", json!("Cluster"));
        // Upstream's Service registry sets these when it allocates the
        // cluster IP; a single-stack IPv4 cluster is what the labs run.
        set_default(spec, "ipFamilies", json!(["IPv4"]));
        set_default(spec, "ipFamilyPolicy", json!("SingleStack"));
    }
    if ty == "LoadBalancer" {
        set_default(spec, "allocateLoadBalancerNodePorts", json!(true));
    }
    if spec.get("sessionAffinity") == Some(&json!("ClientIP")) {
        if let Some(cfg) = child(spec, "sessionAffinityConfig")
            && let Some(client_ip) = child(cfg, "clientIP")
        {
            set_default(client_ip, "timeoutSeconds", json!(10800));
        }
    } else {
        spec.remove("sessionAffinityConfig");
    }
}

fn default_namespace(obj: &mut Map<String, Value>) {
    // Every namespace carries its own name as a label, so that selectors
    // (e.g. in NetworkPolicies) can pick namespaces by name.
    let name = obj
        .get("metadata")
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if !name.is_empty()
        && let Some(meta) = child(obj, "metadata")
        && let Some(labels) = child(meta, "labels")
    {
        labels.insert("kubernetes.io/metadata.name".into(), json!(name));
    }
    if let Some(status) = child(obj, "status") {
        set_default(status, "phase", json!("Active"));
    }
}

fn default_node(obj: &mut Map<String, Value>) {
    // A node that reports only capacity can allocate all of it.
    if let Some(status) = obj.get_mut("status").and_then(Value::as_object_mut)
        && let Some(capacity) = status.get("capacity").cloned()
    {
        set_default(status, "allocatable", capacity);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaulted(kind: &str, mut v: Value) -> Value {
        apply_defaults(kind, &mut v);
        v
    }

    /// The pod spec every template of the tests defaults to.
    fn defaulted_pod_spec() -> Value {
        json!({
            "containers": [{
                "name": "web",
                "image": "app:v1",
                "imagePullPolicy": "IfNotPresent",
                "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                "resources": {},
                "terminationMessagePath": "/dev/termination-log",
                "terminationMessagePolicy": "File",
            }],
            "dnsPolicy": "ClusterFirst",
            "restartPolicy": "Always",
            "schedulerName": "default-scheduler",
            "securityContext": {},
            "terminationGracePeriodSeconds": 30,
        })
    }

    fn manifest() -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "labels": {"app": "web"}},
            "spec": {
                "replicas": 3,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "web", "image": "app:v1",
                        "ports": [{"containerPort": 8080}]}]},
                },
            },
        })
    }

    #[test]
    fn deployment_defaults_match_the_real_server() {
        let d = defaulted("Deployment", manifest());
        assert_eq!(
            d["spec"],
            json!({
                "replicas": 3,
                "revisionHistoryLimit": 10,
                "progressDeadlineSeconds": 600,
                "selector": {"matchLabels": {"app": "web"}},
                "strategy": {"type": "RollingUpdate",
                    "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
                "template": {"metadata": {"labels": {"app": "web"}}, "spec": defaulted_pod_spec()},
            })
        );
    }

    #[test]
    fn kubectl_create_deployment_body() {
        // What kubectl <= 1.31 sends for `create deployment api --image=app:v1`.
        let body = json!({"kind":"Deployment","apiVersion":"apps/v1",
            "metadata":{"name":"api","creationTimestamp":null,"labels":{"app":"api"}},
            "spec":{"replicas":2,"selector":{"matchLabels":{"app":"api"}},
                "template":{"metadata":{"creationTimestamp":null,"labels":{"app":"api"}},
                    "spec":{"containers":[{"name":"app","image":"app:v1","resources":{}}]}},
                "strategy":{}},"status":{}});
        let d = defaulted("Deployment", body);
        assert_eq!(d["spec"]["replicas"], 2);
        assert_eq!(
            d["spec"]["strategy"],
            json!({"type":"RollingUpdate","rollingUpdate":{"maxSurge":"25%","maxUnavailable":"25%"}})
        );
    }

    #[test]
    fn strategy_defaults_only_for_rolling_update() {
        let mut m = manifest();
        m["spec"]["strategy"] = json!({"type": "Recreate"});
        let d = defaulted("Deployment", m);
        assert_eq!(d["spec"]["strategy"], json!({"type": "Recreate"}));

        let mut m = manifest();
        m["spec"]["strategy"] = json!({"rollingUpdate": {"maxSurge": 1}});
        let d = defaulted("Deployment", m);
        assert_eq!(
            d["spec"]["strategy"],
            json!({"type":"RollingUpdate","rollingUpdate":{"maxSurge":1,"maxUnavailable":"25%"}})
        );
        let mut m = manifest();
        m["spec"].as_object_mut().unwrap().remove("replicas");
        assert_eq!(defaulted("Deployment", m)["spec"]["replicas"], 1);
    }

    #[test]
    fn defaulting_is_idempotent_and_templates_round_trip() {
        let objects = [
            ("Deployment", manifest()),
            (
                "ReplicaSet",
                json!({"spec":{"template":{"spec":{"containers":[{"name":"a","image":"x"}]}}}}),
            ),
            (
                "Pod",
                json!({"spec":{"containers":[{"name":"a","image":"x:latest",
                "resources":{"limits":{"cpu":"1"}},
                "readinessProbe":{"httpGet":{"port":80}},
                "env":[{"name":"N","valueFrom":{"fieldRef":{"fieldPath":"metadata.name"}}}]}],
                "volumes":[{"name":"v"},{"name":"c","configMap":{"name":"c"}}]}}),
            ),
            (
                "Service",
                json!({"spec":{"ports":[{"port":80}],"selector":{"app":"web"}}}),
            ),
            ("Namespace", json!({"metadata":{"name":"dev"}})),
            ("Node", json!({"status":{"capacity":{"cpu":"4"}}})),
            ("Secret", json!({"data":{}})),
        ];
        for (kind, obj) in objects {
            let once = defaulted(kind, obj);
            let twice = defaulted(kind, once.clone());
            assert_eq!(once, twice, "{kind}");
        }
        // The controller copies the Deployment's (defaulted) template into a
        // ReplicaSet, which is defaulted again when created: no change.
        let d = defaulted("Deployment", manifest());
        let rs = defaulted(
            "ReplicaSet",
            json!({"spec": {"replicas": 3, "template": d["spec"]["template"].clone()}}),
        );
        assert_eq!(rs["spec"]["template"], d["spec"]["template"]);
        // And a ReplicaSet built from the raw template ends up equal too.
        let rs = defaulted(
            "ReplicaSet",
            json!({"spec": {"template": manifest()["spec"]["template"].clone()}}),
        );
        assert_eq!(rs["spec"]["template"], d["spec"]["template"]);
    }

    #[test]
    fn pod_defaults() {
        let p = defaulted(
            "Pod",
            json!({"spec":{"containers":[{"name":"web","image":"app:v1","ports":[{"containerPort":8080}]}]}}),
        );
        let mut want = defaulted_pod_spec();
        want["enableServiceLinks"] = json!(true);
        assert_eq!(p["spec"], want);

        let p = defaulted(
            "Pod",
            json!({"spec":{"hostNetwork":true,"containers":[{"name":"a","image":"x:1",
                "ports":[{"containerPort":80}],
                "resources":{"limits":{"cpu":"1","memory":"1Gi"},"requests":{"cpu":"500m"}},
                "livenessProbe":{"httpGet":{"port":80}}}],
                "volumes":[{"name":"v"},{"name":"s","secret":{"secretName":"s"}},{"name":"h","hostPath":{"path":"/x"}}]}}),
        );
        let c = &p["spec"]["containers"][0];
        assert_eq!(
            c["resources"]["requests"],
            json!({"cpu":"500m","memory":"1Gi"})
        );
        assert_eq!(c["ports"][0]["hostPort"], 80);
        assert_eq!(
            c["livenessProbe"],
            json!({"httpGet":{"port":80,"path":"/","scheme":"HTTP"},"timeoutSeconds":1,
                "periodSeconds":10,"successThreshold":1,"failureThreshold":3})
        );
        let v = &p["spec"]["volumes"];
        assert_eq!(v[0], json!({"name":"v","emptyDir":{}}));
        assert_eq!(v[1]["secret"]["defaultMode"], 420);
        assert_eq!(v[2]["hostPath"]["type"], "");
    }

    #[test]
    fn image_pull_policy() {
        let cases = [
            ("app", "Always"),
            ("app:latest", "Always"),
            ("app:v1", "IfNotPresent"),
            ("localhost:5000/app", "Always"),
            ("localhost:5000/app:v1", "IfNotPresent"),
            ("app@sha256:0123", "IfNotPresent"),
            ("app:latest@sha256:0123", "Always"),
            ("workbook/demo-app:v2", "IfNotPresent"),
        ];
        for (image, want) in cases {
            assert_eq!(default_image_pull_policy(image), want, "{image}");
        }
        // An explicit policy is kept.
        let p = defaulted(
            "Pod",
            json!({"spec":{"containers":[{"name":"a","image":"x","imagePullPolicy":"Never"}]}}),
        );
        assert_eq!(p["spec"]["containers"][0]["imagePullPolicy"], "Never");
    }

    #[test]
    fn service_defaults() {
        let s = defaulted(
            "Service",
            json!({"spec":{"ports":[{"port":80},{"port":443,"targetPort":"https","protocol":"UDP"}],
                "selector":{"app":"web"}}}),
        );
        assert_eq!(
            s["spec"],
            json!({
                "type": "ClusterIP", "sessionAffinity": "None",
                "internalTrafficPolicy": "Cluster",
                "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack",
                "selector": {"app": "web"},
                "ports": [
                    {"port": 80, "protocol": "TCP", "targetPort": 80},
                    {"port": 443, "protocol": "UDP", "targetPort": "https"},
                ],
            })
        );
        let s = defaulted(
            "Service",
            json!({"spec":{"type":"NodePort","sessionAffinity":"ClientIP","ports":[{"port":80}]}}),
        );
        assert_eq!(s["spec"]["externalTrafficPolicy"], "Cluster");
        assert_eq!(
            s["spec"]["sessionAffinityConfig"]["clientIP"]["timeoutSeconds"],
            10800
        );
        let s = defaulted(
            "Service",
            json!({"spec":{"type":"ExternalName","externalName":"example.com"}}),
        );
        assert!(s["spec"].get("ipFamilies").is_none());
    }

    #[test]
    fn namespace_node_and_others() {
        let ns = defaulted("Namespace", json!({"metadata":{"name":"dev"}}));
        assert_eq!(ns["status"], json!({"phase":"Active"}));
        assert_eq!(
            ns["metadata"]["labels"],
            json!({"kubernetes.io/metadata.name":"dev"})
        );
        let node = defaulted(
            "Node",
            json!({"status":{"capacity":{"cpu":"4","pods":"110"}}}),
        );
        assert_eq!(
            node["status"]["allocatable"],
            json!({"cpu":"4","pods":"110"})
        );
        assert_eq!(defaulted("Secret", json!({}))["type"], "Opaque");
        let ep = defaulted("Endpoints", json!({"subsets":[{"ports":[{"port":80}]}]}));
        assert_eq!(ep["subsets"][0]["ports"][0]["protocol"], "TCP");
        // Unknown kinds and non-objects are left alone.
        assert_eq!(defaulted("Widget", json!({"a":1})), json!({"a":1}));
        assert_eq!(defaulted("Pod", json!(3)), json!(3));
        // Bad shapes do not panic.
        let _ = defaulted(
            "Deployment",
            json!({"spec":{"template":{"spec":{"containers":"x"}}}}),
        );
        let _ = defaulted("Deployment", json!({"spec":7}));
    }

    #[test]
    fn default_toleration_seconds_adds_what_is_not_tolerated_yet() {
        let mut pod = json!({"spec": {"tolerations": [
            {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 6000}
        ]}});
        default_toleration_seconds(&mut pod, 300, 300);
        assert_eq!(
            pod["spec"]["tolerations"],
            json!([
                {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 6000},
                {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
            ])
        );
        // Tolerating everything (empty key, operator Exists) needs nothing more.
        let mut pod = json!({"spec": {"tolerations": [{"operator": "Exists"}]}});
        default_toleration_seconds(&mut pod, 5, 5);
        assert_eq!(pod["spec"]["tolerations"], json!([{"operator": "Exists"}]));
    }
}
