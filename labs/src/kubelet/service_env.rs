//! Service environment variables: `WEB_SERVICE_HOST=127.2.1.1`,
//! `WEB_SERVICE_PORT=80`, and the Docker-links style `WEB_PORT=tcp://…`.
//!
//! Before cluster DNS existed, this was how a pod found a Service: the
//! kubelet writes, into every container it starts, the address of every
//! Service of the pod's namespace that exists *at that moment* (a Service
//! created later is not seen until the container restarts — one reason DNS
//! replaced it). The variables are still set today unless the pod says
//! `enableServiceLinks: false`; the `kubernetes` Service of the `default`
//! namespace (the API server) is always included. A container's own `env`
//! wins over them. Headless Services, and Services without a cluster IP
//! (ExternalName), have no address to give and set nothing.
//!
//! Upstream: `pkg/kubelet/envvars/envvars.go` (`FromServices`,
//! `makeLinkVariables`) and `getServiceEnvVarMap` in
//! `pkg/kubelet/kubelet_pods.go`.

use k8s_openapi::api::core::v1::{Pod, Service};

/// The namespace of the "master services" and their names.
const MASTER_NAMESPACE: &str = "default";
const MASTER_SERVICES: &[&str] = &["kubernetes"];

/// `WEB-API` → `WEB_API` (upstream's `makeEnvVariableName`).
fn env_name(s: &str) -> String {
    s.replace('-', "_").to_uppercase()
}

fn cluster_ip(svc: &Service) -> Option<&str> {
    svc.spec
        .as_ref()
        .and_then(|s| s.cluster_ip.as_deref())
        .filter(|ip| !ip.is_empty() && *ip != "None")
}

// ANCHOR: service_env
/// The variables of the Services a container of `pod` sees, in a stable
/// order (Services by name; upstream iterates a map). `services` may hold
/// Services of any namespace: only the pod's own (unless
/// `enableServiceLinks` is false) and the master services are used.
pub fn service_env(pod: &Pod, services: &[Service]) -> Vec<(String, String)> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let links = pod
        .spec
        .as_ref()
        .and_then(|s| s.enable_service_links)
        .unwrap_or(true);
    let mut chosen: std::collections::BTreeMap<&str, &Service> = Default::default();
    for svc in services {
        let (Some(name), svc_ns) = (
            svc.metadata.name.as_deref(),
            svc.metadata.namespace.as_deref().unwrap_or("default"),
        ) else {
            continue;
        };
        if cluster_ip(svc).is_none() {
            continue;
        }
        if svc_ns == MASTER_NAMESPACE && MASTER_SERVICES.contains(&name) {
            chosen.entry(name).or_insert(svc);
        } else if svc_ns == ns && links {
            chosen.insert(name, svc);
        }
    }
    chosen
        .into_iter()
        .flat_map(|(name, svc)| from_service(name, svc))
        .collect()
}
// ANCHOR_END: service_env

/// One Service's variables (upstream's `FromServices` for one Service).
fn from_service(name: &str, svc: &Service) -> Vec<(String, String)> {
    let Some(ip) = cluster_ip(svc) else {
        return vec![];
    };
    let ports = svc.spec.as_ref().and_then(|s| s.ports.as_ref());
    let Some(ports) = ports.filter(|p| !p.is_empty()) else {
        return vec![];
    };
    let prefix = env_name(name);
    let mut out = vec![
        (format!("{prefix}_SERVICE_HOST"), ip.to_string()),
        (format!("{prefix}_SERVICE_PORT"), ports[0].port.to_string()),
    ];
    // Named ports get a variable of their own (only the first may be
    // unnamed: validation asks for names when there are several).
    for p in ports {
        if let Some(pn) = p.name.as_deref().filter(|n| !n.is_empty()) {
            out.push((
                format!("{prefix}_SERVICE_PORT_{}", env_name(pn)),
                p.port.to_string(),
            ));
        }
    }
    // Docker links: `<NAME>_PORT` for the first port, then four per port.
    for (i, p) in ports.iter().enumerate() {
        let protocol = p.protocol.as_deref().unwrap_or("TCP");
        let (lower, upper) = (protocol.to_lowercase(), protocol.to_uppercase());
        let url = format!("{lower}://{ip}:{}", p.port);
        if i == 0 {
            out.push((format!("{prefix}_PORT"), url.clone()));
        }
        let pp = format!("{prefix}_PORT_{}_{upper}", p.port);
        out.push((pp.clone(), url));
        out.push((format!("{pp}_PROTO"), lower));
        out.push((format!("{pp}_PORT"), p.port.to_string()));
        out.push((format!("{pp}_ADDR"), ip.to_string()));
    }
    out
}

/// Adds the Service variables after the container's own environment,
/// leaving out any name the container sets itself: its `env` wins.
pub fn merge_service_env(env: &mut Vec<(String, String)>, services: Vec<(String, String)>) {
    for (k, v) in services {
        if !env.iter().any(|(name, _)| *name == k) {
            env.push((k, v));
        }
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{PodSpec, ServicePort, ServiceSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::*;

    fn svc(ns: &str, name: &str, ip: &str, ports: &[(&str, i32, &str)]) -> Service {
        Service {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some(ns.into()),
                ..Default::default()
            },
            spec: Some(ServiceSpec {
                cluster_ip: Some(ip.into()),
                ports: Some(
                    ports
                        .iter()
                        .map(|(n, p, proto)| ServicePort {
                            name: (!n.is_empty()).then(|| n.to_string()),
                            port: *p,
                            protocol: (!proto.is_empty()).then(|| proto.to_string()),
                            ..Default::default()
                        })
                        .collect(),
                ),
                ..Default::default()
            }),
            status: None,
        }
    }

    fn pod(ns: &str, links: Option<bool>) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some("p".into()),
                namespace: Some(ns.into()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                enable_service_links: links,
                ..Default::default()
            }),
            status: None,
        }
    }

    fn names(env: &[(String, String)]) -> Vec<&str> {
        env.iter().map(|(k, _)| k.as_str()).collect()
    }

    #[test]
    fn one_service_one_port() {
        let env = service_env(
            &pod("default", None),
            &[svc("default", "web", "127.2.1.1", &[("", 80, "TCP")])],
        );
        let expect = [
            ("WEB_SERVICE_HOST", "127.2.1.1"),
            ("WEB_SERVICE_PORT", "80"),
            ("WEB_PORT", "tcp://127.2.1.1:80"),
            ("WEB_PORT_80_TCP", "tcp://127.2.1.1:80"),
            ("WEB_PORT_80_TCP_PROTO", "tcp"),
            ("WEB_PORT_80_TCP_PORT", "80"),
            ("WEB_PORT_80_TCP_ADDR", "127.2.1.1"),
        ];
        let got: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(got, expect);
    }

    #[test]
    fn named_ports_dashes_and_protocols() {
        let env = service_env(
            &pod("default", None),
            &[svc(
                "default",
                "my-db",
                "127.2.1.5",
                &[("pg-main", 5432, "TCP"), ("metrics", 9187, "UDP")],
            )],
        );
        assert_eq!(
            names(&env),
            [
                "MY_DB_SERVICE_HOST",
                "MY_DB_SERVICE_PORT",
                "MY_DB_SERVICE_PORT_PG_MAIN",
                "MY_DB_SERVICE_PORT_METRICS",
                "MY_DB_PORT",
                "MY_DB_PORT_5432_TCP",
                "MY_DB_PORT_5432_TCP_PROTO",
                "MY_DB_PORT_5432_TCP_PORT",
                "MY_DB_PORT_5432_TCP_ADDR",
                "MY_DB_PORT_9187_UDP",
                "MY_DB_PORT_9187_UDP_PROTO",
                "MY_DB_PORT_9187_UDP_PORT",
                "MY_DB_PORT_9187_UDP_ADDR",
            ]
        );
        assert!(env.contains(&("MY_DB_PORT_9187_UDP".into(), "udp://127.2.1.5:9187".into())));
    }

    #[test]
    fn which_services_count() {
        let services = [
            svc(
                "default",
                "kubernetes",
                "127.2.0.1",
                &[("https", 443, "TCP")],
            ),
            svc("default", "web", "127.2.1.1", &[("", 80, "TCP")]),
            svc("other", "api", "127.2.1.2", &[("", 8080, "TCP")]),
            svc("other", "headless", "None", &[("", 80, "TCP")]),
            svc("other", "external", "", &[]),
        ];
        let hosts = |env: Vec<(String, String)>| -> Vec<String> {
            env.into_iter()
                .map(|(k, _)| k)
                .filter(|k| k.ends_with("_SERVICE_HOST"))
                .collect()
        };
        // Own namespace, plus the API server's Service from `default`.
        assert_eq!(
            hosts(service_env(&pod("other", None), &services)),
            ["API_SERVICE_HOST", "KUBERNETES_SERVICE_HOST"]
        );
        assert_eq!(
            hosts(service_env(&pod("default", None), &services)),
            ["KUBERNETES_SERVICE_HOST", "WEB_SERVICE_HOST"]
        );
        // enableServiceLinks: false keeps only the master service.
        assert_eq!(
            hosts(service_env(&pod("other", Some(false)), &services)),
            ["KUBERNETES_SERVICE_HOST"]
        );
        assert_eq!(
            hosts(service_env(&pod("default", Some(false)), &services[1..])),
            Vec::<String>::new()
        );
    }

    #[test]
    fn the_containers_env_wins() {
        let mut env = vec![("WEB_SERVICE_HOST".to_string(), "mine".to_string())];
        merge_service_env(
            &mut env,
            vec![
                ("WEB_SERVICE_HOST".into(), "127.2.1.1".into()),
                ("WEB_SERVICE_PORT".into(), "80".into()),
            ],
        );
        assert_eq!(
            env,
            [
                ("WEB_SERVICE_HOST".to_string(), "mine".to_string()),
                ("WEB_SERVICE_PORT".to_string(), "80".to_string())
            ]
        );
    }
}
