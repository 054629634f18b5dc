//! Services and EndpointSlices through the real kubectl: `expose`,
//! `create service`, `get svc` (and `-o wide`), `get endpointslices`,
//! conflicts and immutability as 422s, and an address given back on delete.

use workbook::apiserver::{DEPLOYMENT_YAML, TestServer};

/// The header and first row of `kubectl get`, split into cells.
fn rows(out: &str) -> Vec<Vec<String>> {
    out.lines()
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .collect()
}

#[tokio::test]
async fn expose_create_get_and_delete_a_service() {
    let s = TestServer::start().await;
    s.kubectl_stdin(&["apply", "-f", "-"], Some(DEPLOYMENT_YAML))
        .await
        .ok();
    let out = s
        .kubectl(&[
            "expose",
            "deployment",
            "web",
            "--port",
            "80",
            "--target-port",
            "8080",
        ])
        .await;
    assert_eq!(out.ok().trim(), "service/web exposed");
    let out = s
        .kubectl(&["create", "service", "clusterip", "api", "--tcp=80:8080"])
        .await;
    assert_eq!(out.ok().trim(), "service/api created");
    let out = s
        .kubectl(&[
            "create",
            "service",
            "nodeport",
            "edge",
            "--tcp=443:8443",
            "--node-port=30080",
        ])
        .await;
    assert_eq!(out.ok().trim(), "service/edge created");

    let out = s.kubectl(&["get", "svc"]).await;
    let t = rows(out.ok());
    assert_eq!(
        t[0],
        [
            "NAME",
            "TYPE",
            "CLUSTER-IP",
            "EXTERNAL-IP",
            "PORT(S)",
            "AGE"
        ]
    );
    // Sorted by name; addresses from 127.2.0.0/16, dynamic ones from the
    // upper band (127.2.1.x), in creation order.
    assert_eq!(
        t[1][..5],
        ["api", "ClusterIP", "127.2.1.2", "<none>", "80/TCP"]
    );
    assert_eq!(
        t[2][..5],
        ["edge", "NodePort", "127.2.1.3", "<none>", "443:30080/TCP"]
    );
    assert_eq!(
        t[3][..5],
        ["web", "ClusterIP", "127.2.1.1", "<none>", "80/TCP"]
    );

    let out = s.kubectl(&["get", "svc", "web", "-o", "wide"]).await;
    let t = rows(out.ok());
    assert_eq!(t[0].last().unwrap(), "SELECTOR");
    assert_eq!(t[1].last().unwrap(), "app=web");
    // expose copied the Deployment's selector and the target port.
    let out = s
        .kubectl(&["get", "svc", "web", "-o", "jsonpath={.spec.ports[0].targetPort} {.spec.ipFamilies} {.spec.ipFamilyPolicy} {.spec.clusterIPs}"])
        .await;
    assert_eq!(out.ok(), "8080 [\"IPv4\"] SingleStack [\"127.2.1.1\"]");

    // Delete, and the address is free for the next Service that asks.
    s.kubectl(&["delete", "svc", "web"]).await.ok();
    let manifest = "apiVersion: v1\nkind: Service\nmetadata:\n  name: again\nspec:\n  clusterIP: 127.2.1.1\n  ports:\n  - port: 80\n";
    let out = s
        .kubectl_stdin(&["create", "-f", "-"], Some(manifest))
        .await;
    assert_eq!(out.ok().trim(), "service/again created");
    s.stop().await;
}

#[tokio::test]
async fn conflicts_and_immutability_are_422s() {
    let s = TestServer::start().await;
    s.kubectl(&[
        "create",
        "service",
        "nodeport",
        "a",
        "--tcp=80:8080",
        "--node-port=30080",
    ])
    .await
    .ok();
    let out = s
        .kubectl(&[
            "create",
            "service",
            "nodeport",
            "b",
            "--tcp=81:8080",
            "--node-port=30080",
        ])
        .await;
    assert_ne!(out.code, 0);
    assert_eq!(
        out.stderr.trim(),
        "error: failed to create NodePort service: Service \"b\" is invalid: spec.ports[0].nodePort: Invalid value: 30080: provided port is already allocated"
    );
    let out = s
        .kubectl(&[
            "create",
            "service",
            "nodeport",
            "c",
            "--tcp=81:8080",
            "--node-port=8080",
        ])
        .await;
    assert!(
        out.stderr.contains("spec.ports[0].nodePort: Invalid value: 8080: provided port is not in the valid range. The range of valid ports is 30000-32767"),
        "{}",
        out.stderr
    );
    let ip = s
        .kubectl(&["get", "svc", "a", "-o", "jsonpath={.spec.clusterIP}"])
        .await;
    let ip = ip.ok().to_string();
    let out = s
        .kubectl(&[
            "patch",
            "svc",
            "a",
            "-p",
            r#"{"spec":{"clusterIP":"127.2.0.99","clusterIPs":["127.2.0.99"]}}"#,
        ])
        .await;
    assert_ne!(out.code, 0);
    assert_eq!(
        out.stderr.trim(),
        "The Service \"a\" is invalid: spec.clusterIPs[0]: Invalid value: []string{\"127.2.0.99\"}: may not change once set"
    );
    let manifest = format!(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: twin\nspec:\n  clusterIP: {ip}\n  ports:\n  - port: 80\n"
    );
    let out = s
        .kubectl_stdin(&["create", "-f", "-"], Some(&manifest))
        .await;
    assert_eq!(
        out.stderr.trim(),
        format!(
            "The Service \"twin\" is invalid: spec.clusterIPs: Invalid value: []string{{\"{ip}\"}}: failed to allocate IP {ip}: provided IP is already allocated"
        )
    );
    let out = s
        .kubectl_stdin(&["create", "-f", "-"], Some("apiVersion: v1\nkind: Service\nmetadata:\n  name: none\nspec:\n  selector: {app: web}\n"))
        .await;
    assert_eq!(
        out.stderr.trim(),
        "The Service \"none\" is invalid: spec.ports: Required value"
    );
    // Changing the type away from NodePort gives the node port back.
    s.kubectl(&[
        "patch",
        "svc",
        "a",
        "-p",
        r#"{"spec":{"type":"ClusterIP"}}"#,
    ])
    .await
    .ok();
    let out = s
        .kubectl(&[
            "create",
            "service",
            "nodeport",
            "b",
            "--tcp=81:8080",
            "--node-port=30080",
        ])
        .await;
    assert_eq!(out.ok().trim(), "service/b created");
    s.stop().await;
}

#[tokio::test]
async fn get_endpointslices() {
    let s = TestServer::start().await;
    let slice = r#"apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: web-abc12
  labels:
    kubernetes.io/service-name: web
addressType: IPv4
ports:
- name: http
  port: 8080
  protocol: TCP
endpoints:
- addresses: ["127.0.1.2"]
  conditions: {ready: true}
- addresses: ["127.0.1.3"]
- addresses: ["127.0.1.4"]
- addresses: ["127.0.1.5"]
"#;
    let out = s.kubectl_stdin(&["apply", "-f", "-"], Some(slice)).await;
    assert_eq!(
        out.ok().trim(),
        "endpointslice.discovery.k8s.io/web-abc12 created"
    );
    let out = s.kubectl(&["get", "endpointslices"]).await;
    let t = rows(out.ok());
    assert_eq!(t[0], ["NAME", "ADDRESSTYPE", "PORTS", "ENDPOINTS", "AGE"]);
    assert_eq!(
        out.stdout
            .lines()
            .nth(1)
            .unwrap()
            .split("   ")
            .filter(|c| !c.is_empty())
            .map(str::trim)
            .take(4)
            .collect::<Vec<_>>(),
        [
            "web-abc12",
            "IPv4",
            "8080",
            "127.0.1.2,127.0.1.3,127.0.1.4 + 1 more..."
        ]
    );
    let out = s
        .kubectl(&[
            "get",
            "endpointslices",
            "-l",
            "kubernetes.io/service-name=web",
            "-o",
            "name",
        ])
        .await;
    assert_eq!(out.ok().trim(), "endpointslice.discovery.k8s.io/web-abc12");
    let bad = "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: bad\naddressType: IPv5\nendpoints: []\n";
    let out = s.kubectl_stdin(&["create", "-f", "-"], Some(bad)).await;
    assert_eq!(
        out.stderr.trim(),
        "The EndpointSlice \"bad\" is invalid: addressType: Unsupported value: \"IPv5\": supported values: \"FQDN\", \"IPv4\", \"IPv6\""
    );
    s.stop().await;
}
