//! The GKE target against the lab's API server (in this process, served on
//! loopback and reached through a real GKE-style kubeconfig whose user logs
//! in with an exec plugin), with `gcloud` replaced by a recorded stand-in
//! (tests/it/recorded/gcloud playing gcloud.tape): only the cloud calls are
//! faked. Checked: the exact sequence of gcloud calls, the objects applied
//! through kube-rs, the cost line before the first billable create, and
//! `down` removing what the run recorded.

use std::path::{Path, PathBuf};

use demo::apply::{apply, delete, to_value};
use demo::gke::cloud::{STATE_CONFIGMAP, cost_warning, provision, recorded, remove};
use demo::gke::context::connect;
use demo::gke::gcloud::Gcloud;
use demo::gke::registry::{Repository, credentials, ensure_repository};
use demo::gke::{Created, GkeParams};
use demo::manifests;
use demo::tools::Tools;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, ServiceAccount};
use kube::api::Api;

pub(crate) const CONTEXT: &str = "gke_my-proj_asia-northeast1-a_talk";

/// Serves a fresh lab API server on a free loopback port.
pub(crate) async fn api_server() -> (u16, tokio::sync::oneshot::Sender<()>) {
    let api = labs::apiserver::ApiServer::new(labs::store::Store::new());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(api.serve(listener, async {
        let _ = stopped.await;
    }));
    (port, stop)
}

pub(crate) fn executable(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// A kubeconfig as `gcloud container clusters get-credentials` writes it,
/// pointing at `port`, its user logging in with `plugin`.
pub(crate) fn kubeconfig(dir: &Path, port: u16, plugin: &str) -> PathBuf {
    let path = dir.join("kubeconfig");
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: {CONTEXT}\n\
             clusters:\n- name: {CONTEXT}\n  cluster:\n    server: http://127.0.0.1:{port}\n\
             contexts:\n- name: {CONTEXT}\n  context:\n    cluster: {CONTEXT}\n    user: {CONTEXT}\n\
             users:\n- name: {CONTEXT}\n  user:\n    exec:\n      apiVersion: client.authentication.k8s.io/v1beta1\n\
             \x20     command: {plugin}\n      provideClusterInfo: true\n      interactiveMode: Never\n"
        ),
    )
    .unwrap();
    path
}

/// The recorded gcloud and its tape, copied into `dir` (its call counter
/// and log are written beside it).
fn recorded_gcloud(dir: &Path) -> Tools {
    recorded_gcloud_playing(dir, "gcloud.tape")
}

/// The recorded gcloud playing `tape` (from tests/it/recorded).
pub(crate) fn recorded_gcloud_playing(dir: &Path, tape: &str) -> Tools {
    let recorded = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/it/recorded");
    let gcloud = dir.join("gcloud");
    executable(
        &gcloud,
        &std::fs::read_to_string(recorded.join("gcloud")).unwrap(),
    );
    std::fs::copy(recorded.join(tape), dir.join("gcloud.tape")).unwrap();
    Tools {
        path: Some(dir.as_os_str().to_owned()),
        gcloud: Some(gcloud),
        kind: None,
    }
}

#[tokio::test]
async fn gke_up_and_down_with_recorded_gcloud() {
    let dir = tempfile::tempdir().unwrap();
    let (port, stop) = api_server().await;
    let plugin = dir.path().join("gke-gcloud-auth-plugin");
    executable(
        &plugin,
        "#!/bin/sh\necho '{\"apiVersion\":\"client.authentication.k8s.io/v1beta1\",\
         \"kind\":\"ExecCredential\",\"status\":{\"token\":\"recorded-gke-token\"}}'\n",
    );
    let config = kubeconfig(dir.path(), port, &plugin.display().to_string());
    let tools = recorded_gcloud(dir.path());

    let (gke, client) = connect(Some(&config), None, &tools).await.unwrap();
    assert_eq!(
        (gke.project.as_str(), gke.region().as_str()),
        ("my-proj", "asia-northeast1")
    );
    let gcloud = Gcloud::find(&tools).unwrap();
    let repository = Repository {
        project: gke.project.clone(),
        location: gke.region(),
        name: "workbook".into(),
    };
    let p = GkeParams {
        project: gke.project.clone(),
        region: gke.region(),
        instance: "workbook-db".into(),
        database: "app".into(),
        namespace: "talk".into(),
        image: repository.image("v1"),
        replicas: 3,
        db_password: "recorded-password".into(),
    };

    // Up: the cost first, then the repository and the token, Cloud SQL and
    // the identities, then the objects.
    let mut out = Vec::new();
    for line in cost_warning(&p) {
        std::io::Write::write_all(&mut out, format!("{line}\n").as_bytes()).unwrap();
    }
    if let Err(e) = ensure_repository(&gcloud, &client, &p.namespace, &repository, &mut out).await {
        panic!("{e:#}");
    }
    let creds = credentials(&gcloud, &repository).unwrap();
    assert_eq!(creds.username.as_deref(), Some("oauth2accesstoken"));
    assert_eq!(creds.password.as_deref(), Some("ya29.recorded-token"));
    assert_eq!(
        creds.serveraddress.as_deref(),
        Some("asia-northeast1-docker.pkg.dev")
    );
    if let Err(e) = provision(&gcloud, &client, &p, &mut out).await {
        panic!("{e:#}");
    }
    let objects = [
        to_value(&manifests::namespace(&p)),
        to_value(&manifests::service_account(&p)),
        to_value(&manifests::secret(&p)),
        to_value(&manifests::deployment(&p)),
        to_value(&manifests::service(&p)),
    ];
    for object in &objects {
        apply(&client, object).await.unwrap();
    }
    // Applying again changes nothing and fails nothing: the steps are
    // idempotent.
    for object in &objects {
        apply(&client, object).await.unwrap();
    }

    let out = String::from_utf8(out).unwrap();
    // The book shows this recorded run (book/src/generated/gke-up.txt).
    crate::gke::check_generated("gke-up.txt", &out);
    let lines: Vec<&str> = out.lines().collect();
    let cost = lines.iter().position(|l| l.starts_with("Cost: ")).unwrap();
    let first_create = lines
        .iter()
        .position(|l| l.starts_with("gcloud artifacts repositories create"))
        .expect("the repository create is shown");
    let sql_create = lines
        .iter()
        .position(|l| l.starts_with("gcloud sql instances create"))
        .expect("the instance create is shown");
    assert!(cost < first_create && cost < sql_create, "{out}");
    assert!(lines[cost + 1].starts_with("Clean up afterwards with: cargo run -p demo -- down"));
    assert!(
        out.contains("(exists already) gcloud sql users set-password app"),
        "an existing user gets the Secret's password: {out}"
    );

    // What the cluster holds, read back through kube-rs.
    let sa: ServiceAccount = Api::namespaced(client.clone(), "talk")
        .get("web")
        .await
        .unwrap();
    assert_eq!(
        sa.metadata.annotations.unwrap()["iam.gke.io/gcp-service-account"],
        "web-sql@my-proj.iam.gserviceaccount.com"
    );
    let secret: Secret = Api::namespaced(client.clone(), "talk")
        .get("web-db")
        .await
        .unwrap();
    assert_eq!(secret.data.unwrap()["password"].0, b"recorded-password");
    let d: Deployment = Api::namespaced(client.clone(), "talk")
        .get("web")
        .await
        .unwrap();
    let pod = d.spec.unwrap().template.spec.unwrap();
    assert_eq!(
        pod.containers[0].image.as_deref(),
        Some("asia-northeast1-docker.pkg.dev/my-proj/workbook/demo-app:v1")
    );
    assert_eq!(pod.service_account_name.as_deref(), Some("web"));
    let state = recorded(&client, "talk").await.unwrap();
    let made: Vec<&Created> = state.values().collect();
    assert_eq!(
        made.len(),
        4,
        "instance, account, binding, repository: {made:?}"
    );
    assert!(made.contains(&&Created::SqlInstance("workbook-db".into())));

    // Down: what was recorded, then the objects.
    let mut out = Vec::new();
    let removed = remove(&gcloud, &client, "my-proj", "talk", &mut out)
        .await
        .unwrap();
    assert_eq!(removed.len(), 4);
    let out = String::from_utf8(out).unwrap();
    assert!(out.contains("(gone already)"), "{out}");
    for object in objects.iter().rev() {
        delete(&client, object).await.unwrap();
    }
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "talk");
    assert!(cms.get_opt(STATE_CONFIGMAP).await.unwrap().is_none());
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "talk");
    assert!(deployments.get_opt("web").await.unwrap().is_none());

    // The whole tape was played, in order.
    let log = std::fs::read_to_string(dir.path().join("gcloud.log")).unwrap();
    let tape = std::fs::read_to_string(dir.path().join("gcloud.tape")).unwrap();
    let expected: Vec<&str> = tape
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.split('\t').nth(1).unwrap())
        .collect();
    assert_eq!(log.lines().collect::<Vec<_>>(), expected);
    let _ = stop.send(());
}

#[tokio::test]
async fn a_missing_auth_plugin_or_gcloud_is_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let config = kubeconfig(dir.path(), 1, "gke-gcloud-auth-plugin");
    let empty = Tools {
        path: Some(dir.path().as_os_str().to_owned()),
        ..Tools::default()
    };
    let err = format!(
        "{:#}",
        connect(Some(&config), None, &empty).await.err().unwrap()
    );
    assert!(
        err.starts_with("gke-gcloud-auth-plugin is not installed, and context \"gke_my-proj"),
        "{err}"
    );
    assert!(!err.contains('\n'));
    let err = format!("{:#}", Gcloud::find(&empty).unwrap_err());
    assert!(err.starts_with("gcloud is not installed"), "{err}");
    let err = format!(
        "{:#}",
        connect(Some(&config), Some("kind-kind"), &empty)
            .await
            .err()
            .unwrap()
    );
    assert_eq!(err, "the kubeconfig has no context \"kind-kind\"");
}

#[tokio::test]
async fn docker_not_reachable_is_one_line() {
    // The push goes through the engine: an engine that is not there fails
    // before anything is pushed, in one line.
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("docker.sock");
    std::fs::write(&socket, "").unwrap();
    let docker = bollard::Docker::connect_with_unix(
        socket.to_str().unwrap(),
        5,
        bollard::API_DEFAULT_VERSION,
    )
    .unwrap();
    let creds = bollard::auth::DockerCredentials::default();
    let err = demo::gke::registry::push(
        &docker,
        creds,
        "workbook/demo-app:v1",
        "asia-northeast1-docker.pkg.dev/p/workbook/demo-app:v1",
        &mut Vec::new(),
    )
    .await
    .unwrap_err();
    let err = format!("{err:#}");
    assert!(err.starts_with("cannot tag workbook/demo-app:v1"), "{err}");
    assert!(!err.contains('\n'), "{err}");
}
