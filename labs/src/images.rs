//! The workbook's container images, built through the Docker Engine API.
//!
//! `docker build` is not magic: the CLI packs a directory (the *build
//! context*) into a tar archive, POSTs it to the engine's `/build` endpoint
//! and prints the JSON lines that come back. This module does exactly that
//! with bollard, except that the context is made in memory from just two
//! files — the Dockerfile and the static `demo-app` binary — so nothing else
//! from the source tree is ever sent to the engine.
//!
//! Two images come out of it:
//!
//! * `workbook/demo-app:v1`, `:v2` — the workload. The same binary in both;
//!   the build argument `VERSION` makes them answer differently, which is
//!   what a rolling update shows from outside. Never `:latest`: a tag that
//!   moves says nothing about what runs.
//! * `workbook/pause:v1` — the pod sandbox of the Docker runtime (a process
//!   that sleeps until SIGTERM and reaps children).
//!
//! No registry is needed: both are `FROM scratch` around a statically linked
//! binary. Where a registry *is* reachable nothing here changes.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bollard::Docker;
use bollard::query_parameters::{BuildImageOptionsBuilder, RemoveImageOptionsBuilder};
use futures::StreamExt;

/// The workload's repository; the tag is the version (`v1`, `v2`).
pub const APP_REPOSITORY: &str = "workbook/demo-app";
/// The pod sandbox image of the Docker runtime.
pub const PAUSE_IMAGE: &str = "workbook/pause:v1";
/// The two versions of the workload the talk rolls between.
pub const APP_VERSIONS: [&str; 2] = ["v1", "v2"];

/// One image to build: which Dockerfile, which tag, which `VERSION`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageSpec {
    /// The Dockerfile's name in `demo/app/` (and in the build context).
    pub dockerfile: &'static str,
    /// `repository:tag`, e.g. `workbook/demo-app:v1`.
    pub reference: String,
    /// The `--build-arg VERSION=...` value.
    pub version: String,
}

impl ImageSpec {
    /// The workload at `version` (`workbook/demo-app:<version>`).
    pub fn app(version: &str) -> Self {
        ImageSpec {
            dockerfile: "Dockerfile",
            reference: format!("{APP_REPOSITORY}:{version}"),
            version: version.to_string(),
        }
    }

    /// The pause image (`workbook/pause:v1`).
    pub fn pause() -> Self {
        let (_, version) = PAUSE_IMAGE.rsplit_once(':').expect("tagged");
        ImageSpec {
            dockerfile: "pause.Dockerfile",
            reference: PAUSE_IMAGE.to_string(),
            version: version.to_string(),
        }
    }

    /// The `docker build` command line that does the same from a shell.
    pub fn cli(&self) -> String {
        let file = match self.dockerfile {
            "Dockerfile" => String::new(),
            other => format!("-f demo/app/{other} "),
        };
        format!(
            "docker build {file}--build-arg VERSION={} -t {} demo/app",
            self.version, self.reference
        )
    }
}

// ANCHOR: connect
/// Connects to the Docker engine the way the `docker` CLI does: `DOCKER_HOST`
/// if set (`unix://...`, `tcp://...`), else the local socket. Then asks the
/// engine which API version it speaks and talks that one: bollard is written
/// against a newer API than Docker 20.10's 1.41, and an engine rejects
/// requests for a version it does not know.
pub async fn connect() -> anyhow::Result<Docker> {
    let host = std::env::var("DOCKER_HOST")
        .unwrap_or_else(|_| "unix:///var/run/docker.sock (the default)".to_string());
    let docker = Docker::connect_with_defaults()
        .with_context(|| format!("cannot use Docker engine address {host}"))?;
    let docker = docker.negotiate_version().await.with_context(|| {
        format!("no Docker engine answers at {host} (is it running? DOCKER_HOST is honoured)")
    })?;
    Ok(docker)
}
// ANCHOR_END: connect

/// The workspace root (where `Cargo.toml` and `demo/app/` are).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("labs/ has a parent")
        .to_path_buf()
}

/// Where the static build goes: its own target directory, so that the
/// different `RUSTFLAGS` do not invalidate the normal build's artifacts.
pub fn static_target_dir() -> PathBuf {
    workspace_root().join("target").join("static")
}

// ANCHOR: static_binary
/// Builds (if missing or stale — cargo decides, and does nothing when it is
/// fresh) the statically linked `demo-app` and returns its path.
///
/// Why static: a `FROM scratch` image has no C library for a dynamically
/// linked binary to load. `+crt-static` on the gnu target links glibc in;
/// `--target` is given explicitly so that the flag applies to the binary
/// only, not to build scripts and proc macros (which must stay dynamic).
pub fn static_binary(out: &mut dyn Write) -> anyhow::Result<PathBuf> {
    const TARGET: &str = "x86_64-unknown-linux-gnu";
    let target_dir = static_target_dir();
    let binary = target_dir.join(TARGET).join("release").join("demo-app");
    let before = modified(&binary);
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let output = std::process::Command::new(&cargo)
        .current_dir(workspace_root())
        .args([
            "build",
            "--release",
            "--quiet",
            "-p",
            "demo-app",
            "--target",
            TARGET,
        ])
        .arg("--target-dir")
        .arg(&target_dir)
        // CARGO_ENCODED_RUSTFLAGS (set when we run under cargo) would win
        // over RUSTFLAGS.
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env("RUSTFLAGS", "-C target-feature=+crt-static")
        .output()
        .with_context(|| format!("cannot run {cargo} to build the static demo-app"))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let last = stderr.lines().rfind(|l| !l.trim().is_empty()).unwrap_or("");
        bail!("building the static demo-app failed: {last}");
    }
    if modified(&binary) != before {
        writeln!(
            out,
            "(built the static demo-app: {})",
            binary
                .strip_prefix(workspace_root())
                .unwrap_or(&binary)
                .display()
        )?;
    }
    Ok(binary)
}
// ANCHOR_END: static_binary

fn modified(path: &Path) -> Option<std::time::SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

// ANCHOR: context
/// The build context, as `docker build` would send it: a tar archive with
/// the Dockerfile and the binary. Every header is fixed (owner root, fixed
/// mtime) so that an unchanged binary gives an identical `COPY` and the
/// engine's build cache hits.
pub fn build_context(
    dockerfile_name: &str,
    dockerfile: &[u8],
    binary: &[u8],
) -> anyhow::Result<Vec<u8>> {
    let mut archive = tar::Builder::new(Vec::new());
    for (name, data, mode) in [
        (dockerfile_name, dockerfile, 0o644),
        ("demo-app", binary, 0o755),
    ] {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(mode);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(0);
        header.set_cksum();
        archive.append_data(&mut header, name, data)?;
    }
    Ok(archive.into_inner()?)
}
// ANCHOR_END: context

/// What one build did.
#[derive(Debug, Clone)]
pub struct BuildReport {
    /// The image's id (`sha256:...`).
    pub id: String,
    /// How many Dockerfile steps there were, and how many came from the
    /// cache (`---> Using cache`).
    pub steps: usize,
    pub cached_steps: usize,
    pub elapsed: Duration,
}

impl BuildReport {
    /// Every step after `FROM` came from the cache: nothing was rebuilt.
    pub fn fully_cached(&self) -> bool {
        self.steps > 0 && self.cached_steps + 1 >= self.steps
    }
}

// ANCHOR: build
/// Builds `spec` from `demo/app/<dockerfile>` and the static binary, and
/// writes the engine's output to `out` as the Docker CLI prints it
/// (`Step 1/9 : FROM scratch`, ` ---> Using cache`, `Successfully tagged`).
pub async fn build(
    docker: &Docker,
    spec: &ImageSpec,
    binary: &Path,
    out: &mut dyn Write,
) -> anyhow::Result<BuildReport> {
    build_with(docker, spec, binary, false, out).await
}
// ANCHOR_END: build

/// [`build`], optionally ignoring the build cache (`docker build --no-cache`).
async fn build_with(
    docker: &Docker,
    spec: &ImageSpec,
    binary: &Path,
    nocache: bool,
    out: &mut dyn Write,
) -> anyhow::Result<BuildReport> {
    let dockerfile_path = workspace_root().join("demo/app").join(spec.dockerfile);
    let dockerfile = std::fs::read(&dockerfile_path)
        .with_context(|| format!("cannot read {}", dockerfile_path.display()))?;
    let binary_bytes =
        std::fs::read(binary).with_context(|| format!("cannot read {}", binary.display()))?;
    let context = build_context(spec.dockerfile, &dockerfile, &binary_bytes)?;

    let buildargs = std::collections::HashMap::from([("VERSION", spec.version.as_str())]);
    let options = BuildImageOptionsBuilder::default()
        .dockerfile(spec.dockerfile)
        .t(&spec.reference)
        .buildargs(&buildargs)
        // Remove the intermediate containers of metadata steps, also when a
        // step fails (`forcerm`), so a failed build leaves nothing behind.
        .rm(true)
        .forcerm(true)
        .nocache(nocache)
        .build();

    let started = Instant::now();
    let mut stream = docker.build_image(options, None, Some(bollard::body_full(context.into())));
    let (mut steps, mut cached_steps, mut id) = (0, 0, None);
    while let Some(item) = stream.next().await {
        let info = item.with_context(|| format!("docker build {} failed", spec.reference))?;
        if let Some(text) = &info.stream {
            for line in text.lines() {
                if line.starts_with("Step ") {
                    steps += 1;
                }
                if line.trim() == "---> Using cache" {
                    cached_steps += 1;
                }
                if let Some(short) = line.strip_prefix("Successfully built ") {
                    id.get_or_insert_with(|| short.to_string());
                }
            }
            write!(out, "{text}")?;
        }
        if let Some(status) = &info.status {
            writeln!(out, "{status}")?;
        }
        if let Some(aux) = info.aux.as_ref().and_then(|a| a.id.clone()) {
            id = Some(aux);
        }
    }
    let elapsed = started.elapsed();
    // The short id of "Successfully built" is only a prefix: ask for the
    // full one (and check the tag is really there).
    let inspect = docker
        .inspect_image(&spec.reference)
        .await
        .with_context(|| format!("{} was not tagged by the build", spec.reference))?;
    let id = inspect.id.or(id).unwrap_or_default();
    Ok(BuildReport {
        id,
        steps,
        cached_steps,
        elapsed,
    })
}

/// Builds the workload (v1 and v2) and the pause image if anything changed;
/// an unchanged rebuild is a cache hit and takes well under a second.
/// Returns the reports in the order app v1, app v2, pause.
pub async fn ensure_all(docker: &Docker, out: &mut dyn Write) -> anyhow::Result<Vec<BuildReport>> {
    let binary = static_binary(out)?;
    let mut reports = Vec::new();
    for spec in APP_VERSIONS
        .iter()
        .map(|v| ImageSpec::app(v))
        .chain([ImageSpec::pause()])
    {
        reports.push(build(docker, &spec, &binary, out).await?);
    }
    Ok(reports)
}

/// The image half of `labs bench docker`.
#[derive(Debug, Clone)]
pub struct BuildBench {
    /// `workbook/demo-app:v1` built with its image and build cache removed
    /// (the static binary already built: cargo's time is not Docker's).
    pub cold: Duration,
    /// The same build again, unchanged: every step from the cache.
    pub cached: Duration,
    /// Size of the binary sent in the build context.
    pub context_bytes: u64,
}

// ANCHOR: bench
/// Measures an image build cold and cached. "Cold" removes the workbook's
/// images first and builds with `--no-cache`: the engine must unpack the
/// binary into a new layer and commit every metadata step again (each in an
/// intermediate container: that is most of the time). "Cached" is the
/// unchanged rebuild right after. The images are rebuilt at the end, as
/// they were.
pub async fn bench_build(docker: &Docker, runs: usize) -> anyhow::Result<BuildBench> {
    let binary = static_binary(&mut std::io::sink())?;
    let context_bytes = std::fs::metadata(&binary)?.len();
    let spec = ImageSpec::app("v1");
    let mut cold = Vec::new();
    let mut cached = Vec::new();
    for _ in 0..runs.max(1) {
        remove_workbook_images(docker).await?;
        let report = build_with(docker, &spec, &binary, true, &mut std::io::sink()).await?;
        if report.cached_steps > 0 {
            bail!("the cold build of {} used the cache", spec.reference);
        }
        cold.push(report.elapsed);
        let report = build(docker, &spec, &binary, &mut std::io::sink()).await?;
        if !report.fully_cached() {
            bail!(
                "the unchanged rebuild of {} missed the cache",
                spec.reference
            );
        }
        cached.push(report.elapsed);
    }
    Ok(BuildBench {
        cold: median(&mut cold),
        cached: median(&mut cached),
        context_bytes,
    })
}
// ANCHOR_END: bench

/// Removes every workbook image (v1, v2 and the pause image, which shares
/// the `COPY` layer), so that the cold build finds no layer to reuse and
/// the rebuilds after it leave no stale, untagged image behind.
async fn remove_workbook_images(docker: &Docker) -> anyhow::Result<()> {
    let references = APP_VERSIONS
        .iter()
        .map(|v| format!("{APP_REPOSITORY}:{v}"))
        .chain([PAUSE_IMAGE.to_string()]);
    for reference in references {
        match docker
            .remove_image(
                &reference,
                Some(RemoveImageOptionsBuilder::default().build()),
                None,
            )
            .await
        {
            Ok(_) => {}
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => {}
            Err(err) => return Err(err).with_context(|| format!("cannot remove {reference}")),
        }
    }
    Ok(())
}

fn median(values: &mut [Duration]) -> Duration {
    values.sort();
    values[values.len() / 2]
}

/// `labs bench docker`'s image part, printed.
pub async fn run_bench(runs: usize, out: &mut dyn Write) -> anyhow::Result<BuildBench> {
    let docker = connect().await?;
    let figures = bench_build(&docker, runs).await?;
    writeln!(
        out,
        "image build (workbook/demo-app:v1, {:.1} MB binary, median of {runs}): cold {:.2} s, cached {:.3} s",
        figures.context_bytes as f64 / 1e6,
        figures.cold.as_secs_f64(),
        figures.cached.as_secs_f64(),
    )?;
    // The bench removed v2 and the pause image too: build them back.
    ensure_all(&docker, &mut std::io::sink()).await?;
    Ok(figures)
}
