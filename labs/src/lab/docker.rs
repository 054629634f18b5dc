//! `labs docker`: the talk's Docker recap, run for real through the Docker
//! Engine API (bollard), one narrated step at a time.
//!
//! The `docker` CLI is a thin client: every command below is one or two
//! HTTP calls to the engine, and the lab makes those same calls, printing
//! the command a person would type for each. What it shows:
//!
//! 1. the images on the engine (`docker image ls`), and a pull where a
//!    registry is reachable;
//! 2. an image built from `demo/app/Dockerfile`, and its layers;
//! 3. a container with its port published on loopback, called over HTTP;
//!    `docker top` and `docker exec` in it;
//! 4. a change to a running container, `commit`ted to a new image which then
//!    answers differently;
//! 5. two containers on a user-defined network finding each other by name
//!    (what `demo/app/compose.yaml` describes);
//! 6. stop and remove.
//!
//! Everything the lab creates carries the label `workbook.lab=docker`, and
//! that label is all the cleanup looks at: leftovers of an earlier run are
//! removed first, and everything is removed at the end — after success,
//! after an error, on Ctrl-C (a signal handler) and when the lab's future
//! is dropped half-way (a guard). Nothing else on the engine is touched.
//!
//! Not shown (no new idea for the rest of the workbook): volumes, build
//! stages, `docker push` (no registry here), resource limits (the kubelet's
//! Docker runtime sets them later).

use std::collections::HashMap;
use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use bollard::Docker;
use bollard::exec::StartExecResults;
use bollard::models::{
    ContainerConfig, ContainerCreateBody, EndpointSettings, ExecConfig, HealthConfig, HostConfig,
    NetworkCreateRequest, NetworkingConfig, PortBinding,
};
use bollard::query_parameters::{
    CommitContainerOptionsBuilder, CreateContainerOptionsBuilder, CreateImageOptionsBuilder,
    DownloadFromContainerOptionsBuilder, ListContainersOptionsBuilder, ListImagesOptionsBuilder,
    ListNetworksOptionsBuilder, ListVolumesOptionsBuilder, LogsOptionsBuilder,
    RemoveContainerOptionsBuilder, RemoveImageOptionsBuilder, StopContainerOptionsBuilder,
    TopOptionsBuilder, UploadToContainerOptionsBuilder, WaitContainerOptionsBuilder,
};
use futures::StreamExt;

use crate::images::{self, ImageSpec};

/// The label on everything the lab creates, and the only thing its cleanup
/// selects on.
pub const LABEL: (&str, &str) = ("workbook.lab", "docker");
/// The user-defined network of the compose-style pair.
pub const NETWORK: &str = "workbook-docker";
/// Container names. Prefixed, so they cannot collide with a user's own.
pub const WEB: &str = "workbook-docker-web";
pub const HOTFIX: &str = "workbook-docker-hotfix";
pub const APP: &str = "workbook-docker-app";
pub const CLIENT: &str = "workbook-docker-client";
/// The image `docker commit` makes (it carries the label too).
pub const COMMITTED: &str = "workbook/demo-app:lab-hotfix";
/// The small official image pulled where a registry is reachable.
pub const PULL_IMAGE: &str = "busybox:1.37";
/// The pair (and `demo/app/compose.yaml`): the app's health check, and the
/// client's arguments to the image's `/demo-app` entrypoint.
pub const PAIR_HEALTH_CMD: [&str; 3] = ["/demo-app", "get", "http://localhost:8080/healthz"];
pub const PAIR_CLIENT_ARGS: [&str; 2] = ["get", "http://app:8080/"];
/// The image both containers of the pair run.
pub const PAIR_IMAGE: &str = "workbook/demo-app:v2";

/// What the run saw, for the tests to check directly.
#[derive(Debug, Default, Clone)]
pub struct Facts {
    /// `GET /` answers (JSON) of the container from `workbook/demo-app:v1`,
    /// of the committed one, and the client's log line from the pair.
    pub web_answer: String,
    pub hotfix_answer: String,
    pub pair_answer: String,
    /// Whether `busybox:1.37` could be pulled.
    pub pulled: bool,
}

/// Runs the lab, printing to `out`.
pub async fn run(out: &mut dyn Write) -> anyhow::Result<()> {
    run_with_facts(out).await.map(|_| ())
}

// ANCHOR: guarded
/// Runs the lab and returns what it saw. Whatever happens — success, an
/// error in a step, Ctrl-C or SIGTERM — everything labelled
/// `workbook.lab=docker` is removed before this returns.
pub async fn run_with_facts(out: &mut dyn Write) -> anyhow::Result<Facts> {
    let docker = images::connect().await?;
    let left = cleanup(&docker).await?;
    if left > 0 {
        // On stderr: the transcript stays the same whatever a crashed
        // earlier run left.
        eprintln!("(removed {left} leftovers of an earlier `labs docker` run)");
    }
    let guard = Guard::arm();
    let mut lab = Lab {
        docker: docker.clone(),
        out,
        facts: Facts::default(),
        pulled_here: false,
    };
    let result = tokio::select! {
        result = lab.steps() => result,
        () = demo_app::termination_signal() => Err(anyhow!("interrupted")),
    };
    let pulled_here = lab.pulled_here;
    let facts = lab.facts;
    // Normally the last step removed everything and this finds nothing.
    let removed = cleanup(&docker).await;
    if pulled_here && result.is_err() {
        remove_image(&docker, PULL_IMAGE).await.ok();
    }
    guard.disarm();
    match (result, removed) {
        (Err(err), Ok(n)) => Err(anyhow!(
            "{err:#} (removed what the lab had created: {n} objects)"
        )),
        (Err(err), Err(_)) => Err(err),
        (Ok(()), Err(err)) => Err(err.context("cannot remove what the lab created")),
        (Ok(()), Ok(0)) => Ok(facts),
        (Ok(()), Ok(n)) => bail!("the lab's last step left {n} objects (removed now)"),
    }
}

/// Cleans up if the lab's future is dropped before it could (a panic, or
/// a caller's timeout). Drop cannot await, so it connects afresh on a
/// thread of its own and blocks until the engine has removed everything.
struct Guard {
    armed: bool,
}

impl Guard {
    fn arm() -> Self {
        Guard { armed: true }
    }
    fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let cleaned = std::thread::spawn(|| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(async { cleanup(&images::connect().await?).await })
        })
        .join();
        if !matches!(cleaned, Ok(Ok(_))) {
            eprintln!("labs docker: could not remove everything labelled workbook.lab=docker");
        }
    }
}

/// Removes every container, network, volume and image labelled
/// `workbook.lab=docker` (containers first: a network or image in use
/// cannot go). Returns how many objects it removed.
pub async fn cleanup(docker: &Docker) -> anyhow::Result<usize> {
    let filters = label_filter();
    let mut removed = 0;
    let containers = docker
        .list_containers(Some(
            ListContainersOptionsBuilder::default()
                .all(true)
                .filters(&filters)
                .build(),
        ))
        .await?;
    for c in containers {
        let id = c.id.unwrap_or_default();
        let options = RemoveContainerOptionsBuilder::default()
            .force(true)
            .v(true)
            .build();
        ignore_not_found(docker.remove_container(&id, Some(options)).await)?;
        removed += 1;
    }
    let networks = docker
        .list_networks(Some(
            ListNetworksOptionsBuilder::default()
                .filters(&filters)
                .build(),
        ))
        .await?;
    for n in networks {
        ignore_not_found(docker.remove_network(&n.id.unwrap_or_default()).await)?;
        removed += 1;
    }
    let volumes = docker
        .list_volumes(Some(
            ListVolumesOptionsBuilder::default()
                .filters(&filters)
                .build(),
        ))
        .await?;
    for v in volumes.volumes.unwrap_or_default() {
        let options = bollard::query_parameters::RemoveVolumeOptionsBuilder::default().build();
        ignore_not_found(docker.remove_volume(&v.name, Some(options)).await)?;
        removed += 1;
    }
    let images = docker
        .list_images(Some(
            ListImagesOptionsBuilder::default()
                .filters(&filters)
                .build(),
        ))
        .await?;
    for i in images {
        let options = RemoveImageOptionsBuilder::default().force(true).build();
        ignore_not_found(
            docker
                .remove_image(&i.id, Some(options), None)
                .await
                .map(|_| ()),
        )?;
        removed += 1;
    }
    Ok(removed)
}
// ANCHOR_END: guarded

/// What is still on the engine with the lab's label: (containers, networks,
/// volumes, images). The tests check it is all zero after a run.
pub async fn leftovers(docker: &Docker) -> anyhow::Result<(usize, usize, usize, usize)> {
    let filters = label_filter();
    let containers = docker
        .list_containers(Some(
            ListContainersOptionsBuilder::default()
                .all(true)
                .filters(&filters)
                .build(),
        ))
        .await?;
    let networks = docker
        .list_networks(Some(
            ListNetworksOptionsBuilder::default()
                .filters(&filters)
                .build(),
        ))
        .await?;
    let volumes = docker
        .list_volumes(Some(
            ListVolumesOptionsBuilder::default()
                .filters(&filters)
                .build(),
        ))
        .await?;
    let images = docker
        .list_images(Some(
            ListImagesOptionsBuilder::default()
                .filters(&filters)
                .build(),
        ))
        .await?;
    Ok((
        containers.len(),
        networks.len(),
        volumes.volumes.map_or(0, |v| v.len()),
        images.len(),
    ))
}

fn label_filter() -> HashMap<&'static str, Vec<String>> {
    HashMap::from([("label", vec![format!("{}={}", LABEL.0, LABEL.1)])])
}

fn labels() -> HashMap<String, String> {
    HashMap::from([(LABEL.0.to_string(), LABEL.1.to_string())])
}

/// A 404 means someone (an earlier step, `--rm`) removed it already.
fn ignore_not_found(result: Result<(), bollard::errors::Error>) -> anyhow::Result<()> {
    match result {
        Ok(()) => Ok(()),
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) => Ok(()),
        Err(err) => Err(err.into()),
    }
}

async fn remove_image(docker: &Docker, reference: &str) -> anyhow::Result<()> {
    let options = RemoveImageOptionsBuilder::default().build();
    ignore_not_found(
        docker
            .remove_image(reference, Some(options), None)
            .await
            .map(|_| ()),
    )
}

struct Lab<'a> {
    docker: Docker,
    out: &'a mut dyn Write,
    facts: Facts,
    /// `busybox:1.37` was not here and this run pulled it: remove it again.
    pulled_here: bool,
}

impl Lab<'_> {
    fn say(&mut self, line: impl AsRef<str>) -> anyhow::Result<()> {
        writeln!(self.out, "{}", line.as_ref())?;
        Ok(())
    }

    fn step(&mut self, title: &str) -> anyhow::Result<()> {
        self.say("")?;
        self.say(format!("== {title}"))
    }

    /// The equivalent `docker` command, as a shell prompt line.
    fn cmd(&mut self, command: impl AsRef<str>) -> anyhow::Result<()> {
        self.say(format!("$ {}", command.as_ref()))
    }

    async fn steps(&mut self) -> anyhow::Result<()> {
        let started = Instant::now();
        self.say("labs docker: the Docker recap, through the Docker Engine API (bollard)")?;
        let version = self.docker.version().await?;
        self.say(format!(
            "engine: Docker {}, API {} (the client negotiated {})",
            version.version.unwrap_or_default(),
            version.api_version.unwrap_or_default(),
            self.docker.client_version(),
        ))?;
        self.list_images().await?;
        self.pull().await?;
        self.build().await?;
        self.run_and_call().await?;
        self.exec().await?;
        self.commit().await?;
        self.pair().await?;
        self.stop_and_remove().await?;
        self.say("")?;
        self.say(format!(
            "done in {:.1}s; nothing labelled {}={} is left",
            started.elapsed().as_secs_f64(),
            LABEL.0,
            LABEL.1
        ))
    }

    /// Step 1: `docker image ls`, only the workbook's images (we print what
    /// we own; the engine may hold anything else).
    async fn list_images(&mut self) -> anyhow::Result<()> {
        self.step("1. Images: what this engine has (docker image ls)")?;
        self.cmd("docker image ls 'workbook/*'")?;
        let filters = HashMap::from([("reference", vec!["workbook/*".to_string()])]);
        let images = self
            .docker
            .list_images(Some(
                ListImagesOptionsBuilder::default()
                    .filters(&filters)
                    .build(),
            ))
            .await?;
        let mut rows: Vec<(String, String, i64)> = images
            .iter()
            .flat_map(|i| {
                i.repo_tags
                    .iter()
                    .map(|t| (t.clone(), i.id.clone(), i.size))
            })
            .collect();
        rows.sort();
        self.say(format!("  {:<30} {:<14} {}", "IMAGE", "ID", "SIZE"))?;
        if rows.is_empty() {
            self.say("  (none yet: the next step builds them)")?;
        }
        for (tag, id, size) in rows {
            self.say(format!(
                "  {tag:<30} {:<14} {}",
                short_id(&id),
                human_size(size)
            ))?;
        }
        Ok(())
    }

    // ANCHOR: pull
    /// Step 1b: `docker pull` of a small official image, with a short
    /// timeout. Here no registry is reachable; on most machines it is.
    /// Either way the lab goes on: nothing later needs the image.
    async fn pull(&mut self) -> anyhow::Result<()> {
        self.cmd(format!("docker pull {PULL_IMAGE}"))?;
        let present = self.docker.inspect_image(PULL_IMAGE).await.is_ok();
        let (from_image, tag) = PULL_IMAGE.split_once(':').expect("tagged");
        let options = CreateImageOptionsBuilder::default()
            .from_image(from_image)
            .tag(tag)
            .build();
        let pull = async {
            let mut stream = self.docker.create_image(Some(options), None, None);
            let mut last = String::new();
            while let Some(info) = stream.next().await {
                if let Some(status) = info?.status {
                    last = status;
                }
            }
            anyhow::Ok(last)
        };
        match tokio::time::timeout(Duration::from_secs(10), pull).await {
            Ok(Ok(status)) => {
                self.facts.pulled = true;
                self.pulled_here = !present;
                self.say(format!("  pull: {status}"))?;
            }
            Ok(Err(err)) => self.say(format!(
                "  pull: not possible here, going on without it ({})",
                one_line(&format!("{err:#}"))
            ))?,
            Err(_) => self.say("  pull: no answer within 10 s, going on without it")?,
        }
        Ok(())
    }
    // ANCHOR_END: pull

    /// Step 2: build v1 and v2 from the Dockerfile, then the layers.
    async fn build(&mut self) -> anyhow::Result<()> {
        self.step("2. Build the app image from demo/app/Dockerfile (docker build)")?;
        let binary = images::static_binary(self.out)?;
        for version in images::APP_VERSIONS {
            let spec = ImageSpec::app(version);
            self.cmd(spec.cli())?;
            images::build(&self.docker, &spec, &binary, self.out).await?;
        }
        self.say("")?;
        self.say("v2 reused every layer of v1 up to `ARG VERSION`: only metadata differs.")?;
        self.cmd("docker history workbook/demo-app:v1")?;
        let history = self.docker.image_history("workbook/demo-app:v1").await?;
        self.say(format!("  {:<64} {}", "CREATED BY", "SIZE"))?;
        for layer in history {
            // `COPY file:<sha256 of the content> in /`: 12 digits are
            // enough to tell contents apart, as `docker history` shows ids.
            let created_by = layer
                .created_by
                .trim_start_matches("/bin/sh -c #(nop) ")
                .trim()
                .split(' ')
                .map(|w| match w.strip_prefix("file:") {
                    Some(hash) => format!("file:{}", short_id(hash)),
                    None => w.to_string(),
                })
                .collect::<Vec<_>>()
                .join(" ");
            self.say(format!(
                "  {:<64} {}",
                truncate(&created_by, 64),
                human_size(layer.size)
            ))?;
        }
        let image = self.docker.inspect_image("workbook/demo-app:v1").await?;
        let config = image.config.unwrap_or_default();
        self.cmd("docker image inspect -f '{{.Config.User}}' workbook/demo-app:v1")?;
        self.say(format!("  {}", config.user.unwrap_or_default()))?;
        Ok(())
    }

    /// Step 3: `docker run -d -p 127.0.0.1::8080`, then `curl` and `top`.
    async fn run_and_call(&mut self) -> anyhow::Result<()> {
        self.step("3. Run it with its port published on loopback (docker run -p)")?;
        self.cmd(format!(
            "docker run -d --name {WEB} --hostname web --label workbook.lab=docker -p 127.0.0.1::8080 workbook/demo-app:v1"
        ))?;
        let port = self
            .run_published(WEB, "web", "workbook/demo-app:v1")
            .await?;
        self.say(format!("  published: 8080/tcp -> 127.0.0.1:{port}"))?;
        self.cmd(format!("curl -s http://127.0.0.1:{port}/"))?;
        let answer = http_get(port).await?;
        self.say(format!("  {answer}"))?;
        self.facts.web_answer = answer;

        self.cmd(format!("docker top {WEB} -o pid,uid,args"))?;
        let top = self
            .docker
            .top_processes(
                WEB,
                Some(
                    TopOptionsBuilder::default()
                        .ps_args("-o pid,uid,args")
                        .build(),
                ),
            )
            .await?;
        // PIDs differ on every run: show the user and the command.
        self.say(format!("  {:<6} {}", "UID", "COMMAND"))?;
        for p in top.processes.unwrap_or_default() {
            if let [_pid, uid, args, ..] = p.as_slice() {
                self.say(format!("  {uid:<6} {args}"))?;
            }
        }
        Ok(())
    }

    /// Creates, starts and waits for an HTTP answer from a container of
    /// `image` with 8080 published on a free port of 127.0.0.1; returns
    /// the port.
    async fn run_published(
        &mut self,
        name: &str,
        hostname: &str,
        image: &str,
    ) -> anyhow::Result<u16> {
        // An empty host port: the engine picks a free one, as `-p 127.0.0.1::8080`.
        let bindings = HashMap::from([(
            "8080/tcp".to_string(),
            Some(vec![PortBinding {
                host_ip: Some("127.0.0.1".to_string()),
                host_port: Some(String::new()),
            }]),
        )]);
        let body = ContainerCreateBody {
            image: Some(image.to_string()),
            hostname: Some(hostname.to_string()),
            labels: Some(labels()),
            host_config: Some(HostConfig {
                port_bindings: Some(bindings),
                ..Default::default()
            }),
            ..Default::default()
        };
        self.create_and_start(name, body).await?;
        let inspect = self.docker.inspect_container(name, None).await?;
        let port = inspect
            .network_settings
            .and_then(|n| n.ports)
            .and_then(|p| p.get("8080/tcp").cloned().flatten())
            .and_then(|b| b.first().and_then(|b| b.host_port.clone()))
            .and_then(|p| p.parse::<u16>().ok())
            .ok_or_else(|| anyhow!("{name}: the engine published no port for 8080/tcp"))?;
        wait_http(port).await?;
        Ok(port)
    }

    async fn create_and_start(
        &mut self,
        name: &str,
        body: ContainerCreateBody,
    ) -> anyhow::Result<()> {
        self.docker
            .create_container(
                Some(CreateContainerOptionsBuilder::default().name(name).build()),
                body,
            )
            .await
            .with_context(|| format!("docker create {name}"))?;
        self.docker
            .start_container(name, None)
            .await
            .with_context(|| format!("docker start {name}"))?;
        Ok(())
    }

    // ANCHOR: exec
    /// Step 4: `docker exec`. A scratch image has no shell to exec into, so
    /// we run the one program there is: the app binary itself.
    async fn exec(&mut self) -> anyhow::Result<()> {
        self.step("4. Run a second process in the running container (docker exec)")?;
        self.cmd(format!("docker exec {WEB} /demo-app --version"))?;
        let exec = self
            .docker
            .create_exec(
                WEB,
                ExecConfig {
                    cmd: Some(vec!["/demo-app".into(), "--version".into()]),
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    ..Default::default()
                },
            )
            .await?;
        if let StartExecResults::Attached { mut output, .. } =
            self.docker.start_exec(&exec.id, None).await?
        {
            let mut text = String::new();
            while let Some(chunk) = output.next().await {
                text.push_str(&chunk?.to_string());
            }
            for line in text.lines() {
                self.say(format!("  {line}"))?;
            }
        }
        let code = self.docker.inspect_exec(&exec.id).await?.exit_code;
        self.say(format!(
            "  (exit code {}; no shell to `docker exec -it ... sh` into: the image is one file)",
            code.unwrap_or(-1)
        ))?;
        Ok(())
    }
    // ANCHOR_END: exec

    // ANCHOR: commit
    /// Step 5: change the running container, commit it to an image, run it.
    async fn commit(&mut self) -> anyhow::Result<()> {
        self.step("5. Change a running container and commit it (docker cp, diff, commit)")?;
        let note = b"hot-fixed by hand in a running container: do not do this in production\n";
        self.cmd(format!("docker cp hotfix.txt {WEB}:/hotfix.txt"))?;
        let mut archive = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_size(note.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(0);
        header.set_cksum();
        archive.append_data(&mut header, "hotfix.txt", &note[..])?;
        self.docker
            .upload_to_container(
                WEB,
                Some(UploadToContainerOptionsBuilder::default().path("/").build()),
                bollard::body_full(archive.into_inner()?.into()),
            )
            .await?;
        self.cmd(format!("docker diff {WEB}"))?;
        let mut changes = self
            .docker
            .container_changes(WEB)
            .await?
            .unwrap_or_default();
        changes.sort_by(|a, b| a.path.cmp(&b.path));
        for change in changes {
            let kind = match change.kind as i32 {
                0 => "C",
                1 => "A",
                _ => "D",
            };
            self.say(format!("  {kind} {}", change.path))?;
        }

        // A commit takes the container's filesystem changes as a new layer
        // and its config, with `--change` Dockerfile lines applied on top:
        // here a different APP_VERSION (so the new image answers
        // differently) and the lab's label (so cleanup finds the image).
        let (repo, tag) = COMMITTED.split_once(':').expect("tagged");
        self.cmd(format!(
            "docker commit --change 'ENV APP_VERSION=v1-hotfix' --change 'LABEL {}={}' {WEB} {COMMITTED}",
            LABEL.0, LABEL.1
        ))?;
        let changes = format!("ENV APP_VERSION=v1-hotfix\nLABEL {}={}", LABEL.0, LABEL.1);
        let committed = self
            .docker
            .commit_container(
                CommitContainerOptionsBuilder::default()
                    .container(WEB)
                    .repo(repo)
                    .tag(tag)
                    .changes(&changes)
                    .pause(true)
                    .build(),
                ContainerConfig::default(),
            )
            .await?;
        self.say(format!("  {}", committed.id))?;

        self.cmd(format!(
            "docker run -d --name {HOTFIX} --hostname hotfix -p 127.0.0.1::8080 {COMMITTED}"
        ))?;
        let port = self.run_published(HOTFIX, "hotfix", COMMITTED).await?;
        self.cmd(format!("curl -s http://127.0.0.1:{port}/"))?;
        let answer = http_get(port).await?;
        self.say(format!("  {answer}"))?;
        self.facts.hotfix_answer = answer;
        self.cmd(format!("docker cp {HOTFIX}:/hotfix.txt -"))?;
        let file = self.download(HOTFIX, "/hotfix.txt").await?;
        self.say(format!("  {}", file.trim_end()))?;
        Ok(())
    }
    // ANCHOR_END: commit

    /// `docker cp CONTAINER:PATH -`: the engine sends a tar archive.
    async fn download(&mut self, container: &str, path: &str) -> anyhow::Result<String> {
        let mut bytes = Vec::new();
        let mut stream = self.docker.download_from_container(
            container,
            Some(
                DownloadFromContainerOptionsBuilder::default()
                    .path(path)
                    .build(),
            ),
        );
        while let Some(chunk) = stream.next().await {
            bytes.extend_from_slice(&chunk?);
        }
        let mut archive = tar::Archive::new(&bytes[..]);
        let mut entry = archive
            .entries()?
            .next()
            .ok_or_else(|| anyhow!("{container}:{path}: empty archive"))??;
        let mut text = String::new();
        std::io::Read::read_to_string(&mut entry, &mut text)?;
        Ok(text)
    }

    // ANCHOR: pair
    /// Step 6: the compose-style pair. On a user-defined network the
    /// engine runs a DNS server for the containers (127.0.0.11 inside
    /// each), so `app` resolves to the app container: that is how the
    /// services of a compose file find each other. We never call the
    /// containers' bridge addresses from the host: the client runs
    /// *inside* the network, and we read its answer from its logs.
    async fn pair(&mut self) -> anyhow::Result<()> {
        self.step("6. Two containers that find each other by name (demo/app/compose.yaml)")?;
        self.cmd(format!(
            "docker network create --label workbook.lab=docker {NETWORK}"
        ))?;
        self.docker
            .create_network(NetworkCreateRequest {
                name: NETWORK.to_string(),
                driver: Some("bridge".to_string()),
                labels: Some(labels()),
                ..Default::default()
            })
            .await?;

        self.cmd(format!(
            "docker run -d --name {APP} --hostname app --network {NETWORK} --network-alias app \\\n    --health-cmd '{}' --health-interval 1s {PAIR_IMAGE}",
            PAIR_HEALTH_CMD.join(" ")
        ))?;
        let app = ContainerCreateBody {
            image: Some(PAIR_IMAGE.to_string()),
            hostname: Some("app".to_string()),
            labels: Some(labels()),
            // What compose's `depends_on: condition: service_healthy` waits
            // for: the engine runs this command in the container every
            // second and records healthy/unhealthy.
            healthcheck: Some(HealthConfig {
                test: Some(
                    std::iter::once("CMD")
                        .chain(PAIR_HEALTH_CMD)
                        .map(String::from)
                        .collect(),
                ),
                interval: Some(1_000_000_000),
                timeout: Some(2_000_000_000),
                retries: Some(10),
                ..Default::default()
            }),
            host_config: Some(HostConfig {
                network_mode: Some(NETWORK.to_string()),
                ..Default::default()
            }),
            networking_config: Some(NetworkingConfig {
                endpoints_config: Some(HashMap::from([(
                    NETWORK.to_string(),
                    EndpointSettings {
                        aliases: Some(vec!["app".to_string()]),
                        ..Default::default()
                    },
                )])),
            }),
            ..Default::default()
        };
        self.create_and_start(APP, app).await?;
        self.wait_healthy(APP).await?;
        self.say(format!("  {APP} is healthy"))?;

        self.cmd(format!(
            "docker run --name {CLIENT} --network {NETWORK} {PAIR_IMAGE} {}",
            PAIR_CLIENT_ARGS.join(" ")
        ))?;
        let client = ContainerCreateBody {
            image: Some(PAIR_IMAGE.to_string()),
            cmd: Some(PAIR_CLIENT_ARGS.map(String::from).to_vec()),
            labels: Some(labels()),
            host_config: Some(HostConfig {
                network_mode: Some(NETWORK.to_string()),
                ..Default::default()
            }),
            ..Default::default()
        };
        self.create_and_start(CLIENT, client).await?;
        let mut wait = self
            .docker
            .wait_container(CLIENT, Some(WaitContainerOptionsBuilder::default().build()));
        let code = match tokio::time::timeout(Duration::from_secs(20), wait.next()).await {
            Ok(Some(Ok(status))) => status.status_code,
            // A non-zero exit arrives as an error carrying the code.
            Ok(Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. }))) => code,
            Ok(Some(Err(err))) => return Err(err.into()),
            Ok(None) | Err(_) => bail!("{CLIENT} did not finish within 20 s"),
        };
        self.cmd(format!("docker logs {CLIENT}"))?;
        let logs = self.logs(CLIENT).await?;
        for line in logs.lines() {
            self.say(format!("  {line}"))?;
        }
        if code != 0 {
            bail!("{CLIENT} exited with code {code}: {}", one_line(&logs));
        }
        self.facts.pair_answer = logs.trim().to_string();
        Ok(())
    }
    // ANCHOR_END: pair

    async fn wait_healthy(&mut self, name: &str) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let state = self.docker.inspect_container(name, None).await?.state;
            let health = state
                .as_ref()
                .and_then(|s| s.health.as_ref())
                .and_then(|h| h.status)
                .map(|s| s.to_string());
            if health.as_deref() == Some("healthy") {
                return Ok(());
            }
            if state.and_then(|s| s.running) == Some(false) {
                bail!("{name} stopped: {}", one_line(&self.logs(name).await?));
            }
            if Instant::now() > deadline {
                bail!("{name} not healthy within 20 s (health: {health:?})");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn logs(&mut self, name: &str) -> anyhow::Result<String> {
        let mut stream = self.docker.logs(
            name,
            Some(
                LogsOptionsBuilder::default()
                    .stdout(true)
                    .stderr(true)
                    .build(),
            ),
        );
        let mut text = String::new();
        while let Some(chunk) = stream.next().await {
            text.push_str(&chunk?.to_string());
        }
        Ok(text)
    }

    /// Step 7: stop (SIGTERM, then SIGKILL after the timeout) and remove.
    async fn stop_and_remove(&mut self) -> anyhow::Result<()> {
        self.step("7. Stop and remove (docker stop, rm, network rm, rmi)")?;
        self.cmd(format!("docker stop -t 5 {WEB} {HOTFIX} {APP}"))?;
        for name in [WEB, HOTFIX, APP] {
            self.docker
                .stop_container(
                    name,
                    Some(StopContainerOptionsBuilder::default().t(5).build()),
                )
                .await?;
            let state = self.docker.inspect_container(name, None).await?.state;
            let code = state.and_then(|s| s.exit_code).unwrap_or(-1);
            // The app drains and exits 0 on SIGTERM; 137 would mean the
            // engine had to SIGKILL it after the timeout.
            self.say(format!("  {name}: exited with code {code}"))?;
        }
        self.cmd(format!("docker rm {WEB} {HOTFIX} {APP} {CLIENT}"))?;
        for name in [WEB, HOTFIX, APP, CLIENT] {
            self.docker.remove_container(name, None).await?;
        }
        self.cmd(format!("docker network rm {NETWORK}"))?;
        self.docker.remove_network(NETWORK).await?;
        self.cmd(format!("docker rmi {COMMITTED}"))?;
        remove_image(&self.docker, COMMITTED).await?;
        if self.pulled_here {
            self.say(format!(
                "  pull: removing {PULL_IMAGE} again (it was not here before)"
            ))?;
            remove_image(&self.docker, PULL_IMAGE).await?;
            self.pulled_here = false;
        }
        Ok(())
    }
}

/// Polls `GET /` on 127.0.0.1:`port` until the app answers (the container
/// is started, but the process inside needs a moment to listen).
async fn wait_http(port: u16) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match http_get(port).await {
            Ok(_) => return Ok(()),
            Err(err) if Instant::now() > deadline => {
                return Err(err.context(format!("no answer on 127.0.0.1:{port} within 15 s")));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// `GET http://127.0.0.1:port/`, the body as one line.
async fn http_get(port: u16) -> anyhow::Result<String> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .no_proxy()
        .build()?;
    let body = client
        .get(format!("http://127.0.0.1:{port}/"))
        .send()
        .await?
        .error_for_status()?
        .text()
        .await?;
    Ok(one_line(&body))
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn short_id(id: &str) -> String {
    id.trim_start_matches("sha256:").chars().take(12).collect()
}

fn truncate(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        text.to_string()
    } else {
        let cut: String = text.chars().take(width - 1).collect();
        format!("{cut}…")
    }
}

/// Sizes as `docker image ls` prints them (decimal units).
fn human_size(bytes: i64) -> String {
    let b = bytes as f64;
    if bytes < 1000 {
        format!("{bytes}B")
    } else if b < 1e6 {
        format!("{:.3}kB", b / 1e3)
    } else if b < 1e9 {
        format!("{:.3}MB", b / 1e6)
    } else {
        format!("{:.3}GB", b / 1e9)
    }
}

// ANCHOR: redact
/// The lab's transcript with what differs between runs replaced, so that a
/// test can compare it with a snapshot (and the book can show it): ids
/// (hex, 12 or 64 digits) become `[id]`, published ports `[port]`, sizes
/// `[size]`, durations `[time]`; the pull's outcome (it depends on the
/// machine's network) becomes one fixed line. The one place that knows
/// what varies.
pub fn redact(transcript: &str) -> String {
    let mut out = String::new();
    let mut pull_seen = false;
    for line in transcript.lines() {
        if line.starts_with("  pull: ") {
            if !pull_seen {
                out.push_str("  pull: [pulled, or why not]\n");
            }
            pull_seen = true;
            continue;
        }
        out.push_str(&redact_line(line));
        out.push('\n');
    }
    out
}

fn redact_line(line: &str) -> String {
    let chars: Vec<char> = line.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        let at_word_start = i == 0 || !chars[i - 1].is_ascii_alphanumeric();
        if at_word_start {
            let word_end = (i..chars.len())
                .find(|&j| !(chars[j].is_ascii_alphanumeric() || chars[j] == '.'))
                .unwrap_or(chars.len());
            let word: String = chars[i..word_end].iter().collect();
            let word = word.trim_end_matches('.');
            if let Some(replacement) = redact_word(word, &chars[..i]) {
                let width = word.chars().count();
                out.push_str(replacement);
                i += width;
                // Keep table columns aligned: pad to the word's width when
                // a column follows.
                if chars.get(i) == Some(&' ') {
                    let pad = width.saturating_sub(replacement.len());
                    out.extend(std::iter::repeat_n(' ', pad));
                }
                continue;
            }
        }
        out.push(chars[i]);
        i += 1;
    }
    out
}

/// What `word` (a run of letters, digits and dots) is replaced with, if it
/// varies between runs. `before` is the line up to the word.
fn redact_word(word: &str, before: &[char]) -> Option<&'static str> {
    let is_hex = |w: &str| {
        w.chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
    };
    if (word.len() >= 12) && is_hex(word) && word.chars().any(|c| c.is_ascii_digit()) {
        return Some("[id]");
    }
    // A port is the number after `127.0.0.1:`.
    let prefix: String = before.iter().collect();
    if prefix.ends_with("127.0.0.1:")
        && word.chars().all(|c| c.is_ascii_digit())
        && !word.is_empty()
    {
        return Some("[port]");
    }
    let number_then = |unit: &str| {
        word.strip_suffix(unit).is_some_and(|n| {
            !n.is_empty()
                && n.chars().all(|c| c.is_ascii_digit() || c == '.')
                && n.chars().next().is_some_and(|c| c.is_ascii_digit())
        })
    };
    if ["kB", "MB", "GB"].iter().any(|u| number_then(u)) {
        return Some("[size]");
    }
    // Durations are printed with a decimal point (`12.3s`); `1s` in a
    // command line is a setting, not a measurement.
    if (number_then("ms") || number_then("s")) && word.contains('.') {
        return Some("[time]");
    }
    None
}
// ANCHOR_END: redact

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_replaces_what_varies_and_keeps_the_rest() {
        let text = "\
$ curl -s http://127.0.0.1:49153/
 ---> Running in 1a2b3c4d5e6f
  sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
  workbook/demo-app:v1           5c1e2a3b4c5d   4.213MB
  EXPOSE map[8080/tcp:{}]        0B --health-interval 1s
  pull: not possible here (dial tcp: lookup registry-1.docker.io: no such host)
  pull: removing busybox:1.37 again
done in 12.3s; Step 1/9 : FROM scratch
";
        assert_eq!(
            redact(text),
            "\
$ curl -s http://127.0.0.1:[port]/
 ---> Running in [id]
  sha256:[id]
  workbook/demo-app:v1           [id]           [size]
  EXPOSE map[8080/tcp:{}]        0B --health-interval 1s
  pull: [pulled, or why not]
done in [time]; Step 1/9 : FROM scratch
"
        );
    }
}
