//! The validation rules, each checked with objects a learner might write,
//! against upstream's field paths and messages.

use serde_json::{Value, json};

use super::meta::TOTAL_ANNOTATION_SIZE_LIMIT;
use super::pod::POD_UPDATABLE;
use super::*;
use crate::apiserver::defaults::apply_defaults;

fn deployment() -> Value {
    let mut d = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "app:v1",
                    "ports": [{"containerPort": 8080}]}]},
            },
        },
    });
    apply_defaults("Deployment", &mut d);
    d
}

/// `field: message` of every error.
fn errors(kind: &str, obj: &Value, old: Option<&Value>) -> Vec<String> {
    validate(kind, obj, old)
        .iter()
        .map(FieldError::error)
        .collect()
}

fn with(mut obj: Value, pointer: &str, value: Value) -> Value {
    *obj.pointer_mut(pointer)
        .unwrap_or_else(|| panic!("{pointer}")) = value;
    obj
}

#[test]
fn lease_spec() {
    let lease = |spec: Value| json!({"metadata": {"name": "node-1"}, "spec": spec});
    let good = lease(json!({"holderIdentity": "node-1", "leaseDurationSeconds": 40}));
    assert_eq!(errors("Lease", &good, None), Vec::<String>::new());
    let bad = lease(json!({"leaseDurationSeconds": 0, "leaseTransitions": -1}));
    assert_eq!(
        errors("Lease", &bad, Some(&good)),
        [
            "spec.leaseDurationSeconds: Invalid value: 0: must be greater than 0",
            "spec.leaseTransitions: Invalid value: -1: must be greater than or equal to 0",
        ]
    );
}

#[test]
fn valid_objects_pass() {
    assert_eq!(
        errors("Deployment", &deployment(), None),
        Vec::<String>::new()
    );
    let mut rs = json!({"metadata":{"name":"web-abc"},"spec":{
        "selector":{"matchLabels":{"app":"web","pod-template-hash":"abc"}},
        "template":{"metadata":{"labels":{"app":"web","pod-template-hash":"abc"}},
            "spec":{"containers":[{"name":"web","image":"app:v1"}]}}}});
    apply_defaults("ReplicaSet", &mut rs);
    assert_eq!(errors("ReplicaSet", &rs, None), Vec::<String>::new());
    let mut svc = json!({"metadata":{"name":"web"},"spec":{"selector":{"app":"web"},"ports":[{"port":80,"targetPort":8080}]}});
    apply_defaults("Service", &mut svc);
    assert_eq!(errors("Service", &svc, None), Vec::<String>::new());
    let mut pod = json!({"metadata":{"name":"web-1"},"spec":{"containers":[{"name":"web","image":"app:v1"}]}});
    apply_defaults("Pod", &mut pod);
    assert_eq!(errors("Pod", &pod, None), Vec::<String>::new());
    assert_eq!(
        errors("Namespace", &json!({"metadata":{"name":"dev"}}), None),
        Vec::<String>::new()
    );
    // Validating an object against itself (a no-op update) passes.
    assert_eq!(
        errors("Deployment", &deployment(), Some(&deployment())),
        Vec::<String>::new()
    );
    assert_eq!(errors("Pod", &pod, Some(&pod)), Vec::<String>::new());
}

#[test]
fn negative_replicas_and_the_status_body() {
    let d = with(deployment(), "/spec/replicas", json!(-1));
    let errs = validate("Deployment", &d, None);
    assert_eq!(errs.len(), 1);
    assert_eq!(errs[0].field, "spec.replicas");
    assert_eq!(errs[0].reason(), "FieldValueInvalid");
    assert_eq!(
        errs[0].message(),
        "Invalid value: -1: must be greater than or equal to 0"
    );
    assert_eq!(
        invalid_status("Deployment", "apps", "web", &errs),
        json!({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",
            "message":"Deployment.apps \"web\" is invalid: spec.replicas: Invalid value: -1: must be greater than or equal to 0",
            "reason":"Invalid",
            "details":{"name":"web","group":"apps","kind":"Deployment","causes":[
                {"reason":"FieldValueInvalid","message":"Invalid value: -1: must be greater than or equal to 0","field":"spec.replicas"}]},
            "code":422})
    );
    // Several errors are bracketed, as upstream's aggregate prints them.
    let d = with(d, "/spec/revisionHistoryLimit", json!(-2));
    let status = invalid_status(
        "Deployment",
        "apps",
        "web",
        &validate("Deployment", &d, None),
    );
    assert_eq!(
        status["message"],
        "Deployment.apps \"web\" is invalid: [spec.replicas: Invalid value: -1: must be greater than or equal to 0, spec.revisionHistoryLimit: Invalid value: -2: must be greater than or equal to 0]"
    );
    let pod_status = invalid_status("Pod", "", "p", &[]);
    assert_eq!(pod_status["message"], "Pod \"p\" is invalid");
}

#[test]
fn names() {
    let d = with(deployment(), "/metadata/name", json!("Web_1"));
    assert_eq!(
        errors("Deployment", &d, None),
        [
            "metadata.name: Invalid value: \"Web_1\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
        ]
    );
    let d = with(deployment(), "/metadata/name", json!(""));
    assert_eq!(
        errors("Deployment", &d, None),
        ["metadata.name: Required value: name or generateName is required"]
    );
    // Names with dots are fine for most kinds but not for Services and Namespaces.
    assert!(errors("ConfigMap", &json!({"metadata":{"name":"a.b"}}), None).is_empty());
    let ns = errors("Namespace", &json!({"metadata":{"name":"a.b"}}), None);
    assert!(
        ns[0].starts_with(
            "metadata.name: Invalid value: \"a.b\": a lowercase RFC 1123 label must consist"
        ),
        "{ns:?}"
    );
    let svc = errors(
        "Service",
        &json!({"metadata":{"name":"1web"},"spec":{"type":"ExternalName","externalName":"x.org","sessionAffinity":"None"}}),
        None,
    );
    assert_eq!(
        svc,
        [
            "metadata.name: Invalid value: \"1web\": a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"
        ]
    );
    // generateName may end in '-'.
    let generated = json!({"metadata":{"generateName":"web-"}});
    assert!(errors("ConfigMap", &generated, None).is_empty());
    // Namespaces on cluster-scoped kinds are forbidden.
    assert_eq!(
        errors(
            "Node",
            &json!({"metadata":{"name":"n1","namespace":"default"}}),
            None
        ),
        ["metadata.namespace: Forbidden: not allowed on this type"]
    );
}

#[test]
fn labels_and_annotations() {
    let d = with(
        deployment(),
        "/metadata/labels",
        json!({"bad key": "ok", "k": "-bad"}),
    );
    let errs = errors("Deployment", &d, None);
    assert_eq!(errs.len(), 2, "{errs:?}");
    assert!(
        errs[0]
            .starts_with("metadata.labels: Invalid value: \"bad key\": name part must consist of")
    );
    assert!(errs[1].starts_with(
        "metadata.labels: Invalid value: \"-bad\": a valid label must be an empty string"
    ));
    let big = "x".repeat(TOTAL_ANNOTATION_SIZE_LIMIT);
    let d = with(deployment(), "/metadata/labels", json!({"app":"web"}));
    let mut d = d;
    d["metadata"]["annotations"] = json!({"a": big, "Example.COM/Key": "ok"});
    assert_eq!(
        errors("Deployment", &d, None),
        ["metadata.annotations: Too long: may not be more than 262144 bytes"]
    );
}

#[test]
fn selector_rules() {
    // Selector does not match the template.
    let d = with(
        deployment(),
        "/spec/selector",
        json!({"matchLabels":{"app":"db"}}),
    );
    assert_eq!(
        errors("Deployment", &d, None),
        [
            "spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"web\"}: `selector` does not match template `labels`"
        ]
    );
    // Missing selector: both upstream errors.
    let mut d = deployment();
    d["spec"].as_object_mut().unwrap().remove("selector");
    assert_eq!(
        errors("Deployment", &d, None),
        [
            "spec.selector: Required value",
            "spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"web\"}: `selector` does not match template `labels`"
        ]
    );
    // Empty selector.
    let d = with(deployment(), "/spec/selector", json!({}));
    assert_eq!(
        errors("Deployment", &d, None),
        [
            "spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string(nil), MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: empty selector is invalid for deployment"
        ]
    );
    // Bad expressions.
    let d = with(
        deployment(),
        "/spec/selector",
        json!({"matchLabels":{"app":"web"},"matchExpressions":[
        {"key":"tier","operator":"In"},{"key":"x","operator":"Exists","values":["a"]},{"key":"y","operator":"Foo"}]}),
    );
    let errs = errors("Deployment", &d, None);
    assert_eq!(
        &errs[..3],
        [
            "spec.selector.matchExpressions[0].values: Required value: must be specified when `operator` is 'In' or 'NotIn'",
            "spec.selector.matchExpressions[1].values: Forbidden: may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
            "spec.selector.matchExpressions[2].operator: Invalid value: \"Foo\": not a valid selector operator"
        ]
    );
    assert!(errs.contains(&"spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{\"app\":\"web\"}, MatchExpressions:[]v1.LabelSelectorRequirement{v1.LabelSelectorRequirement{Key:\"tier\", Operator:\"In\", Values:[]string(nil)}, v1.LabelSelectorRequirement{Key:\"x\", Operator:\"Exists\", Values:[]string{\"a\"}}, v1.LabelSelectorRequirement{Key:\"y\", Operator:\"Foo\", Values:[]string(nil)}}}: invalid label selector".to_string()), "{errs:?}");
    // Immutable on update (apps/v1).
    let new = with(
        deployment(),
        "/spec/selector",
        json!({"matchLabels":{"app":"web","v":"2"}}),
    );
    let new = with(
        new,
        "/spec/template/metadata/labels",
        json!({"app":"web","v":"2"}),
    );
    assert_eq!(
        errors("Deployment", &new, Some(&deployment())),
        [
            "spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{\"app\":\"web\", \"v\":\"2\"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: field is immutable"
        ]
    );
    assert!(errors("Deployment", &new, None).is_empty());
}

#[test]
fn strategy_rules() {
    let ru = "/spec/strategy/rollingUpdate";
    let both_zero = with(
        deployment(),
        ru,
        json!({"maxSurge": 0, "maxUnavailable": 0}),
    );
    let errs = validate("Deployment", &both_zero, None);
    assert_eq!(errs.len(), 1);
    assert_eq!(errs[0].field, "spec.strategy.rollingUpdate.maxUnavailable");
    assert_eq!(
        errs[0].message(),
        "Invalid value: intstr.IntOrString{Type:0, IntVal:0, StrVal:\"\"}: may not be 0 when `maxSurge` is 0"
    );
    let percent_zero = with(
        deployment(),
        ru,
        json!({"maxSurge": "0%", "maxUnavailable": "0%"}),
    );
    assert_eq!(validate("Deployment", &percent_zero, None).len(), 1);
    let cases = [
        (
            json!({"maxSurge": "25%", "maxUnavailable": "101%"}),
            "spec.strategy.rollingUpdate.maxUnavailable: Invalid value: intstr.IntOrString{Type:1, IntVal:0, StrVal:\"101%\"}: must not be greater than 100%",
        ),
        (
            json!({"maxSurge": "1", "maxUnavailable": 1}),
            "spec.strategy.rollingUpdate.maxSurge: Invalid value: intstr.IntOrString{Type:1, IntVal:0, StrVal:\"1\"}: a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')",
        ),
        (
            json!({"maxSurge": -1, "maxUnavailable": 1}),
            "spec.strategy.rollingUpdate.maxSurge: Invalid value: intstr.IntOrString{Type:0, IntVal:-1, StrVal:\"\"}: must be greater than or equal to 0",
        ),
    ];
    for (rolling, want) in cases {
        let d = with(deployment(), ru, rolling.clone());
        assert_eq!(errors("Deployment", &d, None), [want], "{rolling}");
    }
    let recreate = with(deployment(), "/spec/strategy/type", json!("Recreate"));
    assert_eq!(
        errors("Deployment", &recreate, None),
        [
            "spec.strategy.rollingUpdate: Forbidden: may not be specified when strategy `type` is 'Recreate'"
        ]
    );
    let bad = with(deployment(), "/spec/strategy/type", json!("BlueGreen"));
    assert_eq!(
        errors("Deployment", &bad, None),
        [
            "spec.strategy.type: Unsupported value: \"BlueGreen\": supported values: \"Recreate\", \"RollingUpdate\""
        ]
    );
    let mut d = deployment();
    d["spec"]["minReadySeconds"] = json!(600);
    assert_eq!(
        errors("Deployment", &d, None),
        ["spec.progressDeadlineSeconds: Invalid value: 600: must be greater than minReadySeconds"]
    );
}

#[test]
fn pod_template_rules() {
    let c = "/spec/template/spec/containers";
    let no_containers = with(deployment(), c, json!([]));
    assert_eq!(
        errors("Deployment", &no_containers, None),
        ["spec.template.spec.containers: Required value"]
    );

    let mut d = deployment();
    let web = d.pointer(&format!("{c}/0")).unwrap().clone();
    let mut dup = web.clone();
    dup["image"] = json!("");
    d["spec"]["template"]["spec"]["containers"] = json!([web, dup]);
    assert_eq!(
        errors("Deployment", &d, None),
        [
            "spec.template.spec.containers[1].image: Required value",
            "spec.template.spec.containers[1].name: Duplicate value: \"web\""
        ]
    );

    let d = with(deployment(), &format!("{c}/0/name"), json!("Web"));
    let errs = errors("Deployment", &d, None);
    assert!(errs[0].starts_with("spec.template.spec.containers[0].name: Invalid value: \"Web\": a lowercase RFC 1123 label"), "{errs:?}");

    let d = with(
        deployment(),
        &format!("{c}/0/ports/0"),
        json!({"containerPort": 70000, "protocol": "HTTP", "name": "http", "hostPort": -1}),
    );
    assert_eq!(
        errors("Deployment", &d, None),
        [
            "spec.template.spec.containers[0].ports[0].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive",
            "spec.template.spec.containers[0].ports[0].hostPort: Invalid value: -1: must be between 1 and 65535, inclusive",
            "spec.template.spec.containers[0].ports[0].protocol: Unsupported value: \"HTTP\": supported values: \"SCTP\", \"TCP\", \"UDP\""
        ]
    );
    let d = with(
        deployment(),
        "/spec/template/spec/restartPolicy",
        json!("Never"),
    );
    assert_eq!(
        errors("Deployment", &d, None),
        [
            "spec.template.spec.restartPolicy: Unsupported value: \"Never\": supported values: \"Always\""
        ]
    );
    let d = with(
        deployment(),
        &format!("{c}/0/imagePullPolicy"),
        json!("Sometimes"),
    );
    assert_eq!(
        errors("Deployment", &d, None),
        [
            "spec.template.spec.containers[0].imagePullPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"IfNotPresent\", \"Never\""
        ]
    );
    let mut d = deployment();
    d["spec"]["template"]["spec"]["activeDeadlineSeconds"] = json!(5);
    assert_eq!(
        errors("Deployment", &d, None),
        [
            "spec.template.spec.activeDeadlineSeconds: Forbidden: activeDeadlineSeconds in ReplicaSet is not Supported"
        ]
    );
    // Without defaults, the defaulted fields are reported missing.
    let raw = json!({"metadata":{"name":"p"},"spec":{"containers":[{"name":"a","image":"x"}]}});
    assert_eq!(
        errors("Pod", &raw, None),
        [
            "spec.containers[0].terminationMessagePolicy: Required value: must be 'File' or 'FallbackToLogsOnError'",
            "spec.containers[0].imagePullPolicy: Required value",
            "spec.restartPolicy: Required value",
            "spec.dnsPolicy: Required value"
        ]
    );
}

#[test]
fn pod_updates() {
    let mut pod =
        json!({"metadata":{"name":"p"},"spec":{"containers":[{"name":"a","image":"x:1"}]}});
    apply_defaults("Pod", &mut pod);
    // The image may change; binding (nodeName from empty) is allowed.
    let new = with(pod.clone(), "/spec/containers/0/image", json!("x:2"));
    assert!(errors("Pod", &new, Some(&pod)).is_empty());
    let mut bound = pod.clone();
    bound["spec"]["nodeName"] = json!("n1");
    assert!(errors("Pod", &bound, Some(&pod)).is_empty());
    // Other changes are forbidden.
    let moved = with(bound.clone(), "/spec/nodeName", json!("n2"));
    assert_eq!(
        errors("Pod", &moved, Some(&bound)),
        [format!("spec: Forbidden: {POD_UPDATABLE}")]
    );
    let renamed = with(pod.clone(), "/metadata/name", json!("q"));
    assert_eq!(
        errors("Pod", &renamed, Some(&pod)),
        ["metadata.name: Invalid value: \"q\": field is immutable"]
    );
}

#[test]
fn service_rules() {
    let svc = |spec: Value| {
        let mut s = json!({"metadata":{"name":"web"},"spec": spec});
        apply_defaults("Service", &mut s);
        s
    };
    assert_eq!(
        errors("Service", &svc(json!({})), None),
        ["spec.ports: Required value"]
    );
    assert!(errors("Service", &svc(json!({"clusterIP":"None"})), None).is_empty());
    let s = svc(json!({"ports":[{"port":80},{"port":80}]}));
    assert_eq!(
        errors("Service", &s, None),
        [
            "spec.ports[0].name: Required value",
            "spec.ports[1].name: Required value",
            "spec.ports[1]: Duplicate value: {\"port\":80,\"protocol\":\"TCP\"}"
        ]
    );
    let s = svc(
        json!({"ports":[{"port":0,"targetPort":"Http_x","nodePort":30080}],"type":"ClusterIP"}),
    );
    let errs = errors("Service", &s, None);
    assert_eq!(
        errs[0],
        "spec.ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive"
    );
    assert!(errs[1].starts_with(
        "spec.ports[0].targetPort: Invalid value: \"Http_x\": must contain only alpha-numeric"
    ));
    assert_eq!(
        errs.last().unwrap(),
        "spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'"
    );
    let s = svc(json!({"ports":[{"port":80}],"type":"Magic"}));
    assert_eq!(
        errors("Service", &s, None),
        [
            "spec.type: Unsupported value: \"Magic\": supported values: \"ClusterIP\", \"ExternalName\", \"LoadBalancer\", \"NodePort\""
        ]
    );
    let old =
        svc(json!({"ports":[{"port":80}],"clusterIP":"127.2.1.1","clusterIPs":["127.2.1.1"]}));
    let new = with(old.clone(), "/spec/clusterIPs", json!(["127.2.1.2"]));
    assert_eq!(
        errors("Service", &new, Some(&old)),
        ["spec.clusterIPs[0]: Invalid value: []string{\"127.2.1.2\"}: may not change once set"]
    );
    // Headless stays headless; an ExternalName change is not a change of IP.
    let headless = svc(json!({"clusterIP":"None","clusterIPs":["None"]}));
    assert!(errors("Service", &headless, Some(&headless)).is_empty());
}

#[test]
fn config_map_keys() {
    let cm = json!({"metadata":{"name":"cfg"},"data":{"ok.txt":"1","bad/key":"2"},"binaryData":{"ok.txt":"AA=="}});
    let errs = errors("ConfigMap", &cm, None);
    assert_eq!(errs.len(), 2, "{errs:?}");
    assert!(errs[0].starts_with(
        "data[bad/key]: Invalid value: \"bad/key\": a valid config key must consist of"
    ));
    assert_eq!(
        errs[1],
        "binaryData[ok.txt]: Invalid value: \"ok.txt\": duplicate of key present in data"
    );
    let secret = json!({"metadata":{"name":"s"},"data":{"..x":"AA=="}});
    assert_eq!(
        errors("Secret", &secret, None),
        ["data[..x]: Invalid value: \"..x\": must not start with '..'"]
    );
}
