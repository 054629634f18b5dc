//! `kind load docker-image`, through the Docker Engine API.
//!
//! A kind cluster's nodes are Docker containers, and each node runs its own
//! containerd: the images of the machine's Docker engine are not visible to
//! it. A pod with `image: workbook/demo-app:v1` and `imagePullPolicy:
//! IfNotPresent` starts on a node only if that node's containerd already
//! holds the image, since no registry has it. `kind load docker-image` puts it
//! there, in three moves this module repeats with bollard:
//!
//! 1. **export** the image from the engine as a `docker save` archive
//!    (`GET /images/{name}/get`: `manifest.json`, the config, the layers);
//! 2. **copy** the archive into every node container of the cluster (the
//!    containers labelled `io.x-k8s.kind.cluster=<name>`), as a file
//!    (`PUT /containers/{id}/archive`, which takes a tar *of* the file);
//! 3. **import** it into the node's containerd, in the `k8s.io` namespace
//!    (the one the kubelet's CRI uses), by running `ctr` in the node
//!    (`docker exec`).
//!
//! (kind itself streams the archive into `ctr … import -` on standard input;
//! a file is easier to follow and to check, and costs one `rm` afterwards.)

use std::collections::HashMap;
use std::io::Write;

use anyhow::{Context, bail};
use bollard::Docker;
use bollard::exec::StartExecResults;
use bollard::models::ExecConfig;
use bollard::query_parameters::{ListContainersOptionsBuilder, UploadToContainerOptionsBuilder};
use futures::StreamExt;

use super::CLUSTER_LABEL;

/// Where the archive lands in each node (kind nodes have a `/tmp`; the
/// upload creates it where it does not exist).
pub const NODE_DIR: &str = "/tmp";

// ANCHOR: import_command
/// The command run in each node: `ctr`, containerd's own client, importing
/// into the namespace the kubelet's images live in. `--digests` also
/// records the image under its digest (as a pull would); the snapshotter
/// is the one the node's containerd unpacks layers with.
pub fn import_command(file: &str) -> Vec<String> {
    [
        "ctr",
        "-n",
        "k8s.io",
        "images",
        "import",
        "--digests",
        "--snapshotter=overlayfs",
        file,
    ]
    .map(String::from)
    .to_vec()
}
// ANCHOR_END: import_command

/// The archive's file name in a node: the reference with `/` and `:` made
/// safe (`workbook/demo-app:v1` → `workbook-images-workbook_demo-app_v1.tar`),
/// so loading the same image again overwrites rather than accumulates.
pub fn archive_name(image: &str) -> String {
    let safe: String = image
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("workbook-images-{safe}.tar")
}

/// A node container of the cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    /// The container's name, which is the node's name (`kind-control-plane`).
    pub name: String,
    pub id: String,
}

/// The running node containers of kind cluster `cluster`, by name.
pub async fn nodes(docker: &Docker, cluster: &str) -> anyhow::Result<Vec<Node>> {
    let filters = HashMap::from([(
        "label".to_string(),
        vec![format!("{CLUSTER_LABEL}={cluster}")],
    )]);
    let options = ListContainersOptionsBuilder::default()
        .filters(&filters)
        .build();
    let list = docker
        .list_containers(Some(options))
        .await
        .context("cannot list the Docker engine's containers")?;
    let mut nodes: Vec<Node> = list
        .into_iter()
        .filter_map(|c| {
            let name = c.names?.first()?.trim_start_matches('/').to_string();
            Some(Node { name, id: c.id? })
        })
        .collect();
    nodes.sort_by(|a, b| a.name.cmp(&b.name));
    if nodes.is_empty() {
        bail!(
            "kind cluster {cluster:?} has no running node containers on this Docker engine \
             (none labelled {CLUSTER_LABEL}={cluster}): is it created, and started?"
        );
    }
    Ok(nodes)
}

/// What one load did.
#[derive(Clone, Debug)]
pub struct LoadReport {
    pub image: String,
    /// The image id (`sha256:…`) that the nodes now hold.
    pub id: String,
    /// The size of the `docker save` archive.
    pub archive_bytes: usize,
    /// The nodes it was imported into.
    pub nodes: Vec<String>,
}

// ANCHOR: load
/// Loads `image` (already in the engine) into every node of kind cluster
/// `cluster`, printing one line per node as `kind load` does.
pub async fn load_image(
    docker: &Docker,
    cluster: &str,
    image: &str,
    out: &mut dyn Write,
) -> anyhow::Result<LoadReport> {
    let inspect = docker.inspect_image(image).await.with_context(|| {
        format!("image {image} is not in the Docker engine (build it before loading it)")
    })?;
    let id = inspect.id.unwrap_or_default();
    let nodes = nodes(docker, cluster).await?;

    // 1. `docker save IMAGE`: one archive, sent to every node.
    let mut archive = Vec::new();
    let mut stream = docker.export_image(image);
    while let Some(chunk) = stream.next().await {
        archive.extend_from_slice(&chunk.with_context(|| format!("cannot export {image}"))?);
    }

    // 2. The engine's archive upload unpacks a tar into a directory: the
    // file goes in wrapped in a tar of its own.
    let name = archive_name(image);
    let wrapped = wrap(&name, &archive)?;
    let path = format!("{NODE_DIR}/{name}");
    for node in &nodes {
        writeln!(
            out,
            "Image: \"{image}\" with ID \"{id}\": loading into node \"{}\"...",
            node.name
        )?;
        let options = UploadToContainerOptionsBuilder::default().path("/").build();
        docker
            .upload_to_container(
                &node.id,
                Some(options),
                bollard::body_full(wrapped.clone().into()),
            )
            .await
            .with_context(|| format!("cannot copy {image} into node {}", node.name))?;

        // 3. `ctr images import` in the node.
        let (code, output) = exec(docker, &node.id, import_command(&path)).await?;
        if code != 0 {
            let last = output.lines().rfind(|l| !l.trim().is_empty()).unwrap_or("");
            bail!(
                "importing {image} on node {} failed (ctr exit code {code}): {last}",
                node.name
            );
        }
        // The archive has done its job; a node without `rm` keeps it (it is
        // overwritten by the next load of the same image).
        let _ = exec(
            docker,
            &node.id,
            vec!["rm".into(), "-f".into(), path.clone()],
        )
        .await;
    }
    Ok(LoadReport {
        image: image.to_string(),
        id,
        archive_bytes: archive.len(),
        nodes: nodes.into_iter().map(|n| n.name).collect(),
    })
}
// ANCHOR_END: load

/// A tar holding `tmp/<name>` (and `tmp/` itself, so the upload works in a
/// node without it), to be unpacked at `/`.
fn wrap(name: &str, data: &[u8]) -> anyhow::Result<Vec<u8>> {
    let dir = NODE_DIR.trim_start_matches('/');
    let mtime = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut tar = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Directory);
    header.set_size(0);
    header.set_mode(0o1777);
    header.set_mtime(mtime);
    header.set_cksum();
    tar.append_data(&mut header, format!("{dir}/"), std::io::empty())?;
    let mut header = tar::Header::new_gnu();
    header.set_size(data.len() as u64);
    header.set_mode(0o644);
    header.set_mtime(mtime);
    header.set_cksum();
    tar.append_data(&mut header, format!("{dir}/{name}"), data)?;
    Ok(tar.into_inner()?)
}

/// `docker exec NODE CMD…`: the exit code and the output (stdout and
/// stderr together).
async fn exec(docker: &Docker, container: &str, cmd: Vec<String>) -> anyhow::Result<(i64, String)> {
    let shown = cmd.join(" ");
    let created = docker
        .create_exec(
            container,
            ExecConfig {
                cmd: Some(cmd),
                attach_stdout: Some(true),
                attach_stderr: Some(true),
                ..Default::default()
            },
        )
        .await
        .with_context(|| format!("cannot run `{shown}` in {container}"))?;
    let mut output = String::new();
    if let StartExecResults::Attached { output: mut o, .. } = docker
        .start_exec(&created.id, None)
        .await
        .with_context(|| format!("cannot run `{shown}` in {container}"))?
    {
        while let Some(chunk) = o.next().await {
            output.push_str(&chunk?.to_string());
        }
    }
    let inspect = docker.inspect_exec(&created.id).await?;
    Ok((inspect.exit_code.unwrap_or(-1), output))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archive_names_are_one_safe_file_per_reference() {
        assert_eq!(
            archive_name("workbook/demo-app:v1"),
            "workbook-images-workbook_demo-app_v1.tar"
        );
        assert_ne!(
            archive_name("workbook/demo-app:v1"),
            archive_name("workbook/demo-app:v2")
        );
    }

    #[test]
    fn the_wrapper_holds_the_directory_and_the_file() {
        let wrapped = wrap("x.tar", b"abc").unwrap();
        let mut archive = tar::Archive::new(wrapped.as_slice());
        let names: Vec<String> = archive
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        assert_eq!(names, ["tmp/", "tmp/x.tar"]);
    }
}
