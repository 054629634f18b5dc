//! Bodies as kubectl's Go encoder writes them (every non-pointer field
//! present, zero or not), decoded into the JSON kubectl ≤ 1.31 would send.

use k8s_pb::apimachinery::pkg::apis::meta::v1 as meta;
use k8s_pb::apimachinery::pkg::util::intstr::IntOrString;

use super::convert::GO_ZERO_TIME;
use super::*;
use k8s_pb::apimachinery::pkg::api::resource::Quantity;

/// Go's encoder writes every non-pointer field, zero or not; this is
/// the ObjectMeta kubectl sends for `metadata: {name, labels}`.
fn go_meta(name: &str, labels: &[(&str, &str)]) -> meta::ObjectMeta {
    meta::ObjectMeta {
        name: Some(name.into()),
        generate_name: Some(String::new()),
        namespace: Some(String::new()),
        self_link: Some(String::new()),
        uid: Some(String::new()),
        resource_version: Some(String::new()),
        generation: Some(0),
        creation_timestamp: Some(meta::Time {
            seconds: Some(GO_ZERO_TIME),
            nanos: Some(0),
        }),
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..Default::default()
    }
}

fn go_container(name: &str, image: &str) -> core::Container {
    core::Container {
        name: Some(name.into()),
        image: Some(image.into()),
        working_dir: Some(String::new()),
        resources: Some(Default::default()),
        termination_message_path: Some(String::new()),
        termination_message_policy: Some(String::new()),
        image_pull_policy: Some(String::new()),
        stdin: Some(false),
        stdin_once: Some(false),
        tty: Some(false),
        ..Default::default()
    }
}

fn go_pod_spec(containers: Vec<core::Container>) -> core::PodSpec {
    core::PodSpec {
        containers,
        restart_policy: Some(String::new()),
        dns_policy: Some(String::new()),
        service_account_name: Some(String::new()),
        node_name: Some(String::new()),
        host_network: Some(false),
        scheduler_name: Some(String::new()),
        ..Default::default()
    }
}

#[test]
fn kubectl_create_deployment() {
    // `kubectl create deployment api --image=app:v1 --replicas=2`
    let d = apps::Deployment {
        metadata: Some(go_meta("api", &[("app", "api")])),
        spec: Some(apps::DeploymentSpec {
            replicas: Some(2),
            selector: Some(meta::LabelSelector {
                match_labels: [("app".to_string(), "api".to_string())].into(),
                match_expressions: vec![],
            }),
            template: Some(core::PodTemplateSpec {
                metadata: Some(go_meta("", &[("app", "api")])),
                spec: Some(go_pod_spec(vec![go_container("app", "app:v1")])),
            }),
            strategy: Some(apps::DeploymentStrategy {
                r#type: Some(String::new()),
                rolling_update: None,
            }),
            min_ready_seconds: Some(0),
            paused: Some(false),
            ..Default::default()
        }),
        status: Some(Default::default()),
    };
    let json = decode(&encode("apps/v1", "Deployment", &d)).unwrap();
    // The JSON body kubectl 1.31 sends for the same command, minus
    // `creationTimestamp: null` and `status: {}`.
    assert_eq!(
        json,
        json!({"kind":"Deployment","apiVersion":"apps/v1",
            "metadata":{"name":"api","labels":{"app":"api"}},
            "spec":{"replicas":2,"selector":{"matchLabels":{"app":"api"}},
                "template":{"metadata":{"labels":{"app":"api"}},
                    "spec":{"containers":[{"name":"app","image":"app:v1","resources":{}}]}},
                "strategy":{}}})
    );
    // And it round-trips into k8s-openapi's type.
    let typed: k8s_openapi::api::apps::v1::Deployment = serde_json::from_value(json).unwrap();
    assert_eq!(typed.spec.unwrap().replicas, Some(2));
}

#[test]
fn pointer_zeros_are_kept() {
    let d = apps::Deployment {
        metadata: Some(go_meta("zero", &[])),
        spec: Some(apps::DeploymentSpec {
            replicas: Some(0),
            revision_history_limit: Some(0),
            strategy: Some(apps::DeploymentStrategy {
                r#type: Some("RollingUpdate".into()),
                rolling_update: Some(apps::RollingUpdateDeployment {
                    max_unavailable: Some(IntOrString {
                        r#type: Some(0),
                        int_val: Some(0),
                        str_val: Some(String::new()),
                    }),
                    max_surge: Some(IntOrString {
                        r#type: Some(1),
                        int_val: Some(0),
                        str_val: Some("50%".into()),
                    }),
                }),
            }),
            paused: Some(true),
            ..Default::default()
        }),
        status: None,
    };
    let json = decode(&encode("apps/v1", "Deployment", &d)).unwrap();
    assert_eq!(
        json["spec"],
        json!({"replicas":0,"revisionHistoryLimit":0,"paused":true,
            "strategy":{"type":"RollingUpdate","rollingUpdate":{"maxUnavailable":0,"maxSurge":"50%"}}})
    );
}

#[test]
fn kubectl_run() {
    // `kubectl run web --image=app:v1 --port=8080 --env=MODE=prod --labels=run=web -- --verbose`
    let mut c = go_container("web", "app:v1");
    c.args = vec!["--verbose".into()];
    c.ports = vec![core::ContainerPort {
        name: Some(String::new()),
        host_port: Some(0),
        container_port: Some(8080),
        protocol: Some(String::new()),
        host_ip: Some(String::new()),
    }];
    c.env = vec![
        core::EnvVar {
            name: Some("MODE".into()),
            value: Some("prod".into()),
            value_from: None,
        },
        core::EnvVar {
            name: Some("POD".into()),
            value: Some(String::new()),
            value_from: Some(core::EnvVarSource {
                field_ref: Some(core::ObjectFieldSelector {
                    api_version: Some("v1".into()),
                    field_path: Some("metadata.name".into()),
                }),
                ..Default::default()
            }),
        },
    ];
    c.resources = Some(core::ResourceRequirements {
        limits: [(
            "cpu".to_string(),
            Quantity {
                string: Some("500m".into()),
            },
        )]
        .into(),
        ..Default::default()
    });
    c.readiness_probe = Some(core::Probe {
        handler: Some(core::ProbeHandler {
            http_get: Some(core::HttpGetAction {
                path: Some("/healthz".into()),
                port: Some(IntOrString {
                    r#type: Some(0),
                    int_val: Some(8080),
                    str_val: Some(String::new()),
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
        period_seconds: Some(5),
        timeout_seconds: Some(0),
        ..Default::default()
    });
    let mut spec = go_pod_spec(vec![c]);
    spec.restart_policy = Some("Always".into());
    spec.dns_policy = Some("ClusterFirst".into());
    spec.termination_grace_period_seconds = Some(0);
    spec.volumes = vec![core::Volume {
        name: Some("cfg".into()),
        volume_source: Some(core::VolumeSource {
            config_map: Some(core::ConfigMapVolumeSource {
                local_object_reference: Some(core::LocalObjectReference {
                    name: Some("app".into()),
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
    }];
    let pod = core::Pod {
        metadata: Some(go_meta("web", &[("run", "web")])),
        spec: Some(spec),
        status: Some(Default::default()),
    };
    let json = decode(&encode("v1", "Pod", &pod)).unwrap();
    assert_eq!(
        json,
        json!({"apiVersion":"v1","kind":"Pod","metadata":{"name":"web","labels":{"run":"web"}},
            "spec":{
                "volumes":[{"name":"cfg","configMap":{"name":"app"}}],
                "containers":[{"name":"web","image":"app:v1","args":["--verbose"],
                    "ports":[{"containerPort":8080}],
                    "env":[{"name":"MODE","value":"prod"},
                           {"name":"POD","valueFrom":{"fieldRef":{"apiVersion":"v1","fieldPath":"metadata.name"}}}],
                    "resources":{"limits":{"cpu":"500m"}},
                    "readinessProbe":{"httpGet":{"path":"/healthz","port":8080},"periodSeconds":5}}],
                "restartPolicy":"Always","dnsPolicy":"ClusterFirst","terminationGracePeriodSeconds":0}})
    );
    let _: k8s_openapi::api::core::v1::Pod = serde_json::from_value(json).unwrap();
}

#[test]
fn services_namespaces_configmaps_secrets() {
    // `kubectl create service clusterip web --tcp=80:8080`
    let svc = core::Service {
        metadata: Some(go_meta("web", &[("app", "web")])),
        spec: Some(core::ServiceSpec {
            ports: vec![core::ServicePort {
                name: Some("80-8080".into()),
                protocol: Some("TCP".into()),
                port: Some(80),
                target_port: Some(IntOrString {
                    r#type: Some(0),
                    int_val: Some(8080),
                    str_val: Some(String::new()),
                }),
                node_port: Some(0),
                ..Default::default()
            }],
            selector: [("app".to_string(), "web".to_string())].into(),
            cluster_ip: Some(String::new()),
            r#type: Some("ClusterIP".into()),
            session_affinity: Some(String::new()),
            ..Default::default()
        }),
        status: Some(Default::default()),
    };
    assert_eq!(
        decode(&encode("v1", "Service", &svc)).unwrap(),
        json!({"apiVersion":"v1","kind":"Service","metadata":{"name":"web","labels":{"app":"web"}},
            "spec":{"ports":[{"name":"80-8080","protocol":"TCP","port":80,"targetPort":8080}],
                "selector":{"app":"web"},"type":"ClusterIP"}})
    );
    let ns = core::Namespace {
        metadata: Some(go_meta("dev", &[])),
        spec: Some(Default::default()),
        status: Some(Default::default()),
    };
    assert_eq!(
        decode(&encode("v1", "Namespace", &ns)).unwrap(),
        json!({"apiVersion":"v1","kind":"Namespace","metadata":{"name":"dev"},"spec":{}})
    );
    let cm = core::ConfigMap {
        metadata: Some(go_meta("cfg", &[])),
        immutable: None,
        data: [("a".to_string(), "1".to_string())].into(),
        binary_data: [("b".to_string(), vec![0u8, 1, 2])].into(),
    };
    assert_eq!(
        decode(&encode("v1", "ConfigMap", &cm)).unwrap(),
        json!({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"cfg"},"data":{"a":"1"},"binaryData":{"b":"AAEC"}})
    );
    let secret = core::Secret {
        metadata: Some(go_meta("db", &[])),
        immutable: None,
        data: [("password".to_string(), b"s3cret".to_vec())].into(),
        string_data: Default::default(),
        r#type: Some("Opaque".into()),
    };
    assert_eq!(
        decode(&encode("v1", "Secret", &secret)).unwrap(),
        json!({"apiVersion":"v1","kind":"Secret","metadata":{"name":"db"},"data":{"password":"czNjcmV0"},"type":"Opaque"})
    );
}

#[test]
fn metadata_details() {
    let mut m = go_meta("web-abc", &[("app", "web")]);
    m.namespace = Some("default".into());
    m.creation_timestamp = Some(meta::Time {
        seconds: Some(1_767_268_800),
        nanos: Some(0),
    });
    m.owner_references = vec![meta::OwnerReference {
        api_version: Some("apps/v1".into()),
        kind: Some("ReplicaSet".into()),
        name: Some("web".into()),
        uid: Some("u1".into()),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }];
    m.annotations = [("a".to_string(), "b".to_string())].into();
    m.finalizers = vec!["f".into()];
    let rs = apps::ReplicaSet {
        metadata: Some(m),
        spec: Some(Default::default()),
        status: None,
    };
    assert_eq!(
        decode(&encode("apps/v1", "ReplicaSet", &rs)).unwrap()["metadata"],
        json!({"name":"web-abc","namespace":"default","creationTimestamp":"2026-01-01T12:00:00Z",
            "labels":{"app":"web"},"annotations":{"a":"b"},"finalizers":["f"],
            "ownerReferences":[{"apiVersion":"apps/v1","kind":"ReplicaSet","name":"web","uid":"u1","controller":true,"blockOwnerDeletion":true}]})
    );
}

#[test]
fn errors() {
    assert_eq!(
        decode(b"{\"kind\":\"Pod\"}").unwrap_err(),
        ProtobufError::NotProtobuf
    );
    assert_eq!(ProtobufError::NotProtobuf.status_code(), 400);
    let err = decode(b"k8s\0\xff\xff\xff").unwrap_err();
    assert!(matches!(err, ProtobufError::Decode(_)), "{err:?}");
    assert_eq!(err.status_code(), 400);
    let job = encode("batch/v1", "Job", &core::Namespace::default());
    let err = decode(&job).unwrap_err();
    assert_eq!(
        err,
        ProtobufError::UnsupportedKind {
            api_version: "batch/v1".into(),
            kind: "Job".into()
        }
    );
    assert_eq!(err.status_code(), 415);
    // A valid envelope around a broken object.
    let mut body = encode("v1", "Pod", &core::Pod::default());
    let unknown = k8s_pb::apimachinery::pkg::runtime::Unknown {
        type_meta: Some(k8s_pb::apimachinery::pkg::runtime::TypeMeta {
            api_version: Some("v1".into()),
            kind: Some("Pod".into()),
        }),
        raw: Some(vec![0x0a, 0x05, 0x01]),
        ..Default::default()
    };
    body.truncate(4);
    body.extend(unknown.encode_to_vec());
    assert!(matches!(decode(&body), Err(ProtobufError::Decode(_))));
    // An empty Pod decodes to the bare type and an empty metadata.
    let empty = decode(&encode("v1", "Pod", &core::Pod::default())).unwrap();
    assert_eq!(empty, json!({"apiVersion":"v1","kind":"Pod","metadata":{}}));
}

proptest::proptest! {
    /// Random bytes after the magic never panic the decoder.
    #[test]
    fn random_bodies_never_panic(body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..256)) {
        let _ = decode(&body);
        let mut framed = MAGIC.to_vec();
        framed.extend(&body);
        let _ = decode(&framed);
    }
}
