//! The kind image loader against a real container standing in for a kind
//! node: a `FROM scratch` image holding a static stand-in for `ctr`
//! (demo/tests/ctr-standin/ctr.rs), run twice with kind's node label. The
//! loader exports a real image through the real engine, copies it into
//! both "nodes" and runs the stand-in there; the test reads back what each
//! stand-in recorded and checks it is the image: its tag, and its config
//! digest equal to the engine's image id.
//!
//! Needs a Docker engine; `WORKBOOK_SKIP_DOCKER=1` skips. Every container
//! and image is named `workbook-kindtest-<pid>-…` and removed at the end.

use std::collections::HashMap;
use std::path::PathBuf;

use bollard::Docker;
use bollard::models::ContainerCreateBody;
use bollard::query_parameters::{
    BuildImageOptionsBuilder, CreateContainerOptionsBuilder, DownloadFromContainerOptionsBuilder,
    RemoveContainerOptionsBuilder, RemoveImageOptionsBuilder,
};
use demo::kind::CLUSTER_LABEL;
use demo::kind::load::{NODE_DIR, archive_name, import_command, load_image};
use futures::StreamExt;

/// The engine, or `None` when explicitly skipped; one clear line otherwise.
async fn engine() -> Option<Docker> {
    if std::env::var("WORKBOOK_SKIP_DOCKER").is_ok_and(|v| v == "1") {
        eprintln!("skipped: WORKBOOK_SKIP_DOCKER=1");
        return None;
    }
    match labs::images::connect().await {
        Ok(docker) => Some(docker),
        Err(err) => {
            panic!("these tests need a Docker engine: {err:#} (WORKBOOK_SKIP_DOCKER=1 skips them)")
        }
    }
}

/// Compiles the `ctr` stand-in: one file, std only, linked statically so
/// that it runs in an empty image.
fn standin_binary() -> PathBuf {
    let source = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/ctr-standin/ctr.rs");
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("ctr-standin");
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let status = std::process::Command::new(rustc)
        .args(["--edition=2024", "-O", "-C", "target-feature=+crt-static"])
        .args(["--target", "x86_64-unknown-linux-gnu", "-o"])
        .arg(&out)
        .arg(&source)
        .status()
        .expect("rustc runs");
    assert!(status.success(), "compiling {}", source.display());
    out
}

const DOCKERFILE: &str = "FROM scratch\n\
COPY ctr /usr/local/bin/ctr\n\
ENV PATH=/usr/local/bin\n\
ENTRYPOINT [\"/usr/local/bin/ctr\", \"node\"]\n";

async fn build_node_image(docker: &Docker, tag: &str) {
    let binary = std::fs::read(standin_binary()).unwrap();
    let mut archive = tar::Builder::new(Vec::new());
    for (name, data, mode) in [
        ("Dockerfile", DOCKERFILE.as_bytes(), 0o644),
        ("ctr", binary.as_slice(), 0o755),
    ] {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(mode);
        header.set_cksum();
        archive.append_data(&mut header, name, data).unwrap();
    }
    let context = archive.into_inner().unwrap();
    let options = BuildImageOptionsBuilder::default()
        .t(tag)
        .rm(true)
        .forcerm(true)
        .build();
    let mut stream = docker.build_image(options, None, Some(bollard::body_full(context.into())));
    while let Some(item) = stream.next().await {
        let info = item.expect("the stand-in node image builds");
        assert!(info.error_detail.is_none(), "{info:?}");
    }
}

async fn start_node(docker: &Docker, name: &str, image: &str, cluster: &str) {
    let body = ContainerCreateBody {
        image: Some(image.into()),
        labels: Some(HashMap::from([(
            CLUSTER_LABEL.to_string(),
            cluster.to_string(),
        )])),
        ..Default::default()
    };
    let options = CreateContainerOptionsBuilder::default().name(name).build();
    docker.create_container(Some(options), body).await.unwrap();
    docker.start_container(name, None).await.unwrap();
}

/// The file `path` from a container (the engine sends a tar of it).
async fn read_file(docker: &Docker, container: &str, path: &str) -> String {
    let options = DownloadFromContainerOptionsBuilder::default()
        .path(path)
        .build();
    let mut bytes = Vec::new();
    let mut stream = docker.download_from_container(container, Some(options));
    while let Some(chunk) = stream.next().await {
        bytes.extend_from_slice(&chunk.unwrap_or_else(|e| panic!("{container}:{path}: {e}")));
    }
    let mut archive = tar::Archive::new(bytes.as_slice());
    let mut entry = archive.entries().unwrap().next().unwrap().unwrap();
    let mut text = String::new();
    std::io::Read::read_to_string(&mut entry, &mut text).unwrap();
    text
}

async fn cleanup(docker: &Docker, containers: &[String], image: &str) {
    for name in containers {
        let options = RemoveContainerOptionsBuilder::default()
            .force(true)
            .v(true)
            .build();
        let _ = docker.remove_container(name, Some(options)).await;
    }
    let options = RemoveImageOptionsBuilder::default().force(true).build();
    let _ = docker.remove_image(image, Some(options), None).await;
}

#[tokio::test]
async fn loads_an_image_into_every_node_as_kind_load_does() {
    let Some(docker) = engine().await else { return };
    let prefix = format!("workbook-kindtest-{}", std::process::id());
    let cluster = prefix.clone();
    let image = format!("{prefix}/node:v1");
    let nodes = [
        format!("{prefix}-control-plane"),
        format!("{prefix}-worker"),
    ];
    build_node_image(&docker, &image).await;
    let result = async {
        for node in &nodes {
            start_node(&docker, node, &image, &cluster).await;
        }
        let mut out = Vec::new();
        let report = load_image(&docker, &cluster, &image, &mut out).await?;
        let mut records = Vec::new();
        for node in &nodes {
            let path = format!("/var/lib/ctr-standin/imports/{}", archive_name(&image));
            records.push(read_file(&docker, node, &path).await);
        }
        let missing = load_image(&docker, &format!("{prefix}-nope"), &image, &mut Vec::new())
            .await
            .unwrap_err();
        anyhow::Ok((report, String::from_utf8(out)?, records, missing))
    }
    .await;
    cleanup(&docker, &nodes, &image).await;
    let (report, out, records, missing) = result.unwrap();

    assert_eq!(report.nodes, nodes, "every node, by name");
    assert!(report.id.starts_with("sha256:"), "{report:?}");
    for node in &nodes {
        assert!(
            out.contains(&format!("loading into node \"{node}\"")),
            "{out}"
        );
    }
    let file = format!("{NODE_DIR}/{}", archive_name(&image));
    let id_hex = report.id.trim_start_matches("sha256:");
    for record in records {
        let args = record.lines().next().unwrap();
        assert_eq!(
            args,
            format!("args {}", import_command(&file)[1..].join(" "))
        );
        let manifest = record
            .lines()
            .find_map(|l| l.strip_prefix("manifest "))
            .expect("the manifest was recorded");
        let manifest: serde_json::Value = serde_json::from_str(manifest).unwrap();
        assert_eq!(manifest[0]["RepoTags"], serde_json::json!([image]));
        let config = manifest[0]["Config"].as_str().unwrap();
        assert!(config.contains(id_hex), "config {config} is image {id_hex}");
        assert!(
            record.lines().any(|l| l == format!("entry {config}")),
            "the config is in the archive: {record}"
        );
        let layers = manifest[0]["Layers"].as_array().unwrap();
        assert!(!layers.is_empty());
        for layer in layers {
            let layer = layer.as_str().unwrap();
            assert!(
                record.lines().any(|l| l == format!("entry {layer}")),
                "{layer}"
            );
        }
    }
    let missing = format!("{missing:#}");
    assert!(
        missing.contains("has no running node containers"),
        "{missing}"
    );
    assert!(!missing.contains('\n'));
}
