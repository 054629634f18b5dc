//! The Artifact Registry push (`demo::gke::registry::push`) against a
//! registry on loopback: a small Docker Registry HTTP API v2 server in this
//! test (the part of the protocol a push uses), asking for Basic
//! credentials as Artifact Registry does. The real Docker engine pushes a
//! real image to it; the test checks the engine logged in as
//! `oauth2accesstoken` with the token, that every blob arrived with the
//! digest it was announced under, and that the manifest put last refers to
//! exactly those blobs, its config being the engine's image.
//!
//! (The engine talks plain HTTP to registries on 127.0.0.0/8, which it
//! treats as insecure registries by default.) Needs a Docker engine;
//! `WORKBOOK_SKIP_DOCKER=1` skips. The image is `workbook-regtest-<pid>/…`,
//! removed at the end.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use bollard::auth::DockerCredentials;
use bollard::query_parameters::{BuildImageOptionsBuilder, RemoveImageOptionsBuilder};
use futures::StreamExt;
use sha2::{Digest, Sha256};

const TOKEN: &str = "ya29.loopback-token";

#[derive(Default)]
struct Registry {
    /// Uploads in progress, by id.
    uploads: BTreeMap<String, Vec<u8>>,
    /// Stored blobs, by digest.
    blobs: BTreeMap<String, Vec<u8>>,
    /// Manifests, by `name:reference`.
    manifests: BTreeMap<String, (String, Vec<u8>)>,
    /// Requests refused for want of credentials, and accepted ones.
    challenged: usize,
    authorized: usize,
    next_id: u64,
}

fn sha256(data: &[u8]) -> String {
    let digest = Sha256::digest(data);
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

fn basic(user: &str, password: &str) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

/// The registry's one handler: the path names the repository (which has
/// slashes of its own) and the operation, so it is parsed here rather than
/// routed.
async fn handle(
    state: Arc<Mutex<Registry>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut r = state.lock().unwrap();
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if auth != Some(basic("oauth2accesstoken", TOKEN).as_str()) {
        r.challenged += 1;
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Basic realm=\"loopback\"")],
            "{\"errors\":[{\"code\":\"UNAUTHORIZED\"}]}",
        )
            .into_response();
    }
    r.authorized += 1;
    let path = uri.path();
    let query: BTreeMap<String, String> = uri
        .query()
        .unwrap_or_default()
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.replace("%3A", ":")))
        .collect();
    if path == "/v2/" || path == "/v2" {
        return StatusCode::OK.into_response();
    }
    let Some(rest) = path.strip_prefix("/v2/") else {
        return StatusCode::NOT_FOUND.into_response();
    };
    if let Some((name, upload)) = rest.split_once("/blobs/uploads/") {
        if method == Method::POST {
            // A new upload (a cross-repository mount is answered the same
            // way: "upload it").
            r.next_id += 1;
            let id = format!("u{}", r.next_id);
            r.uploads.insert(id.clone(), Vec::new());
            return (
                StatusCode::ACCEPTED,
                [
                    (header::LOCATION, format!("/v2/{name}/blobs/uploads/{id}")),
                    (header::RANGE, "0-0".to_string()),
                    (
                        header::HeaderName::from_static("docker-upload-uuid"),
                        id.clone(),
                    ),
                ],
            )
                .into_response();
        }
        let id = upload.to_string();
        let Some(data) = r.uploads.get_mut(&id) else {
            return StatusCode::NOT_FOUND.into_response();
        };
        data.extend_from_slice(&body);
        let len = data.len();
        if method == Method::PATCH {
            return (
                StatusCode::ACCEPTED,
                [
                    (header::LOCATION, format!("/v2/{name}/blobs/uploads/{id}")),
                    (header::RANGE, format!("0-{}", len.saturating_sub(1))),
                ],
            )
                .into_response();
        }
        if method == Method::PUT {
            let data = r.uploads.remove(&id).unwrap_or_default();
            let Some(digest) = query.get("digest") else {
                return StatusCode::BAD_REQUEST.into_response();
            };
            if &sha256(&data) != digest {
                return (
                    StatusCode::BAD_REQUEST,
                    "{\"errors\":[{\"code\":\"DIGEST_INVALID\"}]}",
                )
                    .into_response();
            }
            r.blobs.insert(digest.clone(), data);
            return (
                StatusCode::CREATED,
                [
                    (header::LOCATION, format!("/v2/{name}/blobs/{digest}")),
                    (
                        header::HeaderName::from_static("docker-content-digest"),
                        digest.clone(),
                    ),
                ],
            )
                .into_response();
        }
    }
    if let Some((_, digest)) = rest.split_once("/blobs/") {
        return match r.blobs.get(digest) {
            Some(data) => (
                StatusCode::OK,
                [
                    (header::CONTENT_LENGTH, data.len().to_string()),
                    (
                        header::HeaderName::from_static("docker-content-digest"),
                        digest.to_string(),
                    ),
                ],
            )
                .into_response(),
            None => StatusCode::NOT_FOUND.into_response(),
        };
    }
    if let Some((name, reference)) = rest.split_once("/manifests/") {
        let key = format!("{name}:{reference}");
        if method == Method::PUT {
            let media_type = headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            let digest = sha256(&body);
            r.manifests.insert(key, (media_type, body.to_vec()));
            return (
                StatusCode::CREATED,
                [
                    (header::LOCATION, format!("/v2/{name}/manifests/{digest}")),
                    (
                        header::HeaderName::from_static("docker-content-digest"),
                        digest,
                    ),
                ],
            )
                .into_response();
        }
        return StatusCode::NOT_FOUND.into_response();
    }
    StatusCode::NOT_FOUND.into_response()
}

#[tokio::test]
async fn pushes_to_a_loopback_registry_with_the_token() {
    if std::env::var("WORKBOOK_SKIP_DOCKER").is_ok_and(|v| v == "1") {
        eprintln!("skipped: WORKBOOK_SKIP_DOCKER=1");
        return;
    }
    let docker = labs::images::connect().await.unwrap_or_else(|err| {
        panic!("this test needs a Docker engine: {err:#} (WORKBOOK_SKIP_DOCKER=1 skips it)")
    });

    let state = Arc::new(Mutex::new(Registry::default()));
    let shared = Arc::clone(&state);
    let app = axum::Router::new().fallback(
        move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
            handle(Arc::clone(&shared), method, uri, headers, body)
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await });

    // A small real image: one file in an empty one.
    let local = format!("workbook-regtest-{}/tiny:v1", std::process::id());
    let mut context = tar::Builder::new(Vec::new());
    let message = format!(
        "pushed by the workbook's registry test {}\n",
        std::process::id()
    );
    for (name, data) in [
        (
            "Dockerfile",
            "FROM scratch\nCOPY hello.txt /hello.txt\n".as_bytes(),
        ),
        ("hello.txt", message.as_bytes()),
    ] {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        context.append_data(&mut h, name, data).unwrap();
    }
    let options = BuildImageOptionsBuilder::default()
        .t(&local)
        .rm(true)
        .build();
    let mut build = docker.build_image(
        options,
        None,
        Some(bollard::body_full(context.into_inner().unwrap().into())),
    );
    while let Some(item) = build.next().await {
        let info = item.expect("the tiny image builds");
        assert!(info.error_detail.is_none(), "{info:?}");
    }

    let remote = format!("127.0.0.1:{port}/my-proj/workbook/demo-app:v1");
    let credentials = DockerCredentials {
        username: Some("oauth2accesstoken".into()),
        password: Some(TOKEN.into()),
        serveraddress: Some(format!("127.0.0.1:{port}")),
        ..DockerCredentials::default()
    };
    let id = docker.inspect_image(&local).await.unwrap().id.unwrap();
    let mut out = Vec::new();
    let pushed = demo::gke::registry::push(&docker, credentials, &local, &remote, &mut out).await;
    let remove = RemoveImageOptionsBuilder::default().force(true).build();
    for image in [&local, &remote] {
        let _ = docker.remove_image(image, Some(remove.clone()), None).await;
    }
    let out = String::from_utf8_lossy(&out).into_owned();
    pushed.unwrap_or_else(|e| panic!("{e:#}\n{out}"));

    let r = state.lock().unwrap();
    assert!(r.authorized > 0, "the engine never sent the token");
    let (media_type, manifest) = r
        .manifests
        .get("my-proj/workbook/demo-app:v1")
        .unwrap_or_else(|| panic!("no manifest for the tag: {:?}", r.manifests.keys()));
    assert!(media_type.contains("manifest"), "{media_type}");
    let manifest: serde_json::Value = serde_json::from_slice(manifest).unwrap();
    let mut referenced: BTreeSet<String> = manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].as_str().unwrap().to_string())
        .collect();
    referenced.insert(manifest["config"]["digest"].as_str().unwrap().to_string());
    let stored: BTreeSet<String> = r.blobs.keys().cloned().collect();
    assert_eq!(
        referenced, stored,
        "the manifest refers to exactly the blobs pushed"
    );
    // The config pushed is the engine's image itself (an image's id is the
    // digest of its config), with one layer per pushed layer blob.
    assert_eq!(manifest["config"]["digest"], id.as_str());
    let config: serde_json::Value = serde_json::from_slice(&r.blobs[id.as_str()]).unwrap();
    assert_eq!(
        config["rootfs"]["diff_ids"].as_array().unwrap().len(),
        manifest["layers"].as_array().unwrap().len()
    );
    assert!(
        out.contains("Pushed") || out.contains("Layer already exists"),
        "{out}"
    );
}
