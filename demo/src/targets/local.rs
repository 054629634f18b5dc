//! The local target: the lab cluster, started in this process.
//!
//! The same components `cargo run -p labs -- cluster` starts — the API
//! server (served on a loopback port too, so kubectl works), the controller
//! manager, the scheduler, three nodes each with a kubelet and a
//! kube-proxy — built from the `labs` crate's public API. With the process
//! runtime (the default) a container is a child process of this very
//! binary (`demo app …`, a hidden subcommand with `demo-app`'s command
//! line), so nothing needs building; with `--runtime docker` the kubelets
//! run real containers, from images built with bollard.
//!
//! The database is a throwaway PostgreSQL from the machine's server
//! binaries, started next to the cluster, as Cloud SQL sits next to a GKE
//! cluster. Without the binaries the app runs without a database (the demo
//! says how to add one). With the Docker runtime it runs without one too: a
//! container cannot reach the host's loopback, and the workbook never sends
//! traffic to a container bridge address.
//!
//! The cluster lives as long as the process. `demo up` (and `demo run
//! --keep`) keep it in the foreground and write a small state file, so that
//! the single-step commands (`demo deploy`, `demo update`, …) in another
//! terminal find it and its database.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use k8s_openapi::api::core::v1::Service;
use labs::apiserver::{ApiServer, kubeconfig};
use labs::cluster::{ClusterOptions, Components, Nodes, api_config, start_docker_kubelets};
use labs::kubelet::runtime::LoopbackIpam;
use labs::kubelet::runtime::process::ProcessConfig;
use labs::proxy::proxier::{KubeProxy, ProxyOptions};
use labs::store::Store;
use serde::{Deserialize, Serialize};

use super::{AppVersion, ClusterInfo, LocalRuntime, Objects, Settings, Target};
use crate::narrate::Narrator;
use crate::probe::{InProcessProbe, Probe};
use crate::steps::Step;
use crate::workload::{DatabaseSettings, Workload};

/// The local cluster's nodes.
pub const NODES: usize = 3;
/// The Service's port (kube-proxy binds it on the cluster IP; a high port
/// needs no root).
pub const SERVICE_PORT: u16 = 8000;
/// Requests per second of the traffic probe.
pub const PROBE_RPS: u32 = 50;

/// How to run the local cluster.
#[derive(Clone, Debug)]
pub struct LocalOptions {
    /// The binary with the hidden `app` subcommand (this one by default;
    /// tests pass `CARGO_BIN_EXE_demo`).
    pub exe: Option<PathBuf>,
    /// The first pod address and the Services' range. By default both are
    /// chosen from the process id, so that two clusters on one machine (two
    /// learners, or parallel tests) do not share addresses.
    pub addresses: Option<(Ipv4Addr, (Ipv4Addr, u8))>,
    /// Where `demo up` writes the kubeconfig and the state file
    /// (`$DEMO_STATE_DIR`, else `$TMPDIR/workbook-demo`).
    pub state_dir: PathBuf,
    /// Use the cluster a `demo up` left running instead of starting one
    /// (the single-step commands).
    pub attach: bool,
}

impl Default for LocalOptions {
    fn default() -> Self {
        LocalOptions {
            exe: None,
            addresses: None,
            // DEMO_STATE_DIR: for tests, and for two local clusters at once.
            state_dir: std::env::var_os("DEMO_STATE_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| std::env::temp_dir().join("workbook-demo")),
            attach: false,
        }
    }
}

/// What a running `demo up` tells the single-step commands.
#[derive(Serialize, Deserialize)]
struct State {
    kubeconfig: PathBuf,
    database: Option<(String, String, String, String)>,
}

/// The running cluster: everything to stop at the end.
struct Running {
    api: ApiServer,
    stop_server: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    components: Components,
    nodes: Nodes,
    proxies: Vec<KubeProxy>,
    kubeconfig: PathBuf,
    database: Option<demo_app::postgres::TempPostgres>,
}

pub struct LocalTarget {
    options: LocalOptions,
    runtime: LocalRuntime,
    context: Option<String>,
    running: Option<Running>,
    client: Option<kube::Client>,
    /// The connection settings the Secret gets. Placeholders until the
    /// cluster step has started the database (what `--dry-run` shows).
    database: Option<DatabaseSettings>,
}

impl LocalTarget {
    pub fn new(settings: &Settings, options: LocalOptions) -> LocalTarget {
        let database = (settings.runtime == LocalRuntime::Process).then(|| DatabaseSettings {
            address: "127.0.0.1:5432".into(),
            user: demo_app::postgres::USER.into(),
            password: "GENERATED_PASSWORD".into(),
            database: "app".into(),
        });
        LocalTarget {
            options,
            runtime: settings.runtime,
            context: settings.context.clone(),
            running: None,
            client: None,
            database,
        }
    }

    fn state_file(&self) -> PathBuf {
        self.options.state_dir.join("local.json")
    }

    fn addresses(&self) -> (Ipv4Addr, (Ipv4Addr, u8)) {
        self.options.addresses.unwrap_or_else(|| {
            let third = 10 + (std::process::id() % 200) as u8;
            (
                Ipv4Addr::new(127, 6, third, 1),
                (Ipv4Addr::new(127, 7, third, 0), 24),
            )
        })
    }

    /// The single-step commands: the cluster a `demo up` runs.
    async fn attach(&mut self) -> anyhow::Result<(kube::Client, ClusterInfo)> {
        if let Some(context) = &self.context {
            let client = super::connect(Some(context)).await?;
            return Ok((
                client,
                ClusterInfo {
                    description: format!("the cluster at context {context}"),
                    ..ClusterInfo::default()
                },
            ));
        }
        let path = self.state_file();
        let none = || {
            anyhow::anyhow!(
                "no cluster at the context: no local cluster is running; start one with \
                 `cargo run -p demo -- up` (it stays in the foreground), or run the whole demo \
                 with `cargo run -p demo`"
            )
        };
        let text = std::fs::read_to_string(&path).map_err(|_| none())?;
        let state: State = serde_json::from_str(&text).map_err(|_| none())?;
        let kubeconfig =
            kube::config::Kubeconfig::read_from(&state.kubeconfig).map_err(|_| none())?;
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
            .await
            .map_err(|_| none())?;
        let client = kube::Client::try_from(config)?;
        client.apiserver_version().await.map_err(|_| none())?;
        self.database =
            state
                .database
                .map(|(address, user, password, database)| DatabaseSettings {
                    address,
                    user,
                    password,
                    database,
                });
        Ok((
            client,
            ClusterInfo {
                description: format!(
                    "the local cluster `demo up` runs (KUBECONFIG={})",
                    state.kubeconfig.display()
                ),
                notes: Vec::new(),
                database: self.database.is_some(),
            },
        ))
    }

    /// The kubeconfig of a cluster a `demo up` (or `demo run --keep`) is
    /// running from this state directory, if one answers. A stale state
    /// file (its process was killed) is not one.
    async fn running_elsewhere(&self) -> Option<PathBuf> {
        let text = std::fs::read_to_string(self.state_file()).ok()?;
        let state: State = serde_json::from_str(&text).ok()?;
        let kubeconfig = kube::config::Kubeconfig::read_from(&state.kubeconfig).ok()?;
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
            .await
            .ok()?;
        let client = kube::Client::try_from(config).ok()?;
        tokio::time::timeout(Duration::from_secs(3), client.apiserver_version())
            .await
            .ok()?
            .ok()?;
        Some(state.kubeconfig)
    }

    // ANCHOR: start
    /// Starts the lab cluster in this process, and the database.
    async fn start(&mut self, n: &mut Narrator) -> anyhow::Result<(kube::Client, ClusterInfo)> {
        // The state file and the kubeconfig have one place per state
        // directory: a second cluster would overwrite the ones a running
        // `demo up` wrote (and its learner's KUBECONFIG), then delete them.
        if let Some(kubeconfig) = self.running_elsewhere().await {
            anyhow::bail!(
                "a local cluster is already running (`demo up`, KUBECONFIG={}): use the single \
                 steps against it (`cargo run -p demo -- deploy`, …), or stop it (Ctrl-C there) \
                 first",
                kubeconfig.display()
            );
        }
        let (first_pod_ip, service_cidr) = self.addresses();
        let mut config = api_config(300);
        config.service_cidr = service_cidr;
        let api = ApiServer::with_config(Store::new(), config);
        // Served on loopback as well, for kubectl (and `--keep`).
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("cannot listen on 127.0.0.1")?;
        let kubeconfig_path = self.options.state_dir.join("kubeconfig");
        kubeconfig::write_kubeconfig(&kubeconfig_path, listener.local_addr()?)
            .with_context(|| format!("cannot write {}", kubeconfig_path.display()))?;
        let (stop_server, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(api.clone().serve(listener, async {
            let _ = stopped.await;
        }));
        let components = Components::start(&api, &ClusterOptions::default());
        let ipam = LoopbackIpam::starting_at(first_pod_ip);
        let client = api.client();
        let nodes = match self.runtime {
            LocalRuntime::Process => {
                let exe = match &self.options.exe {
                    Some(exe) => exe.clone(),
                    None => std::env::current_exe().context("cannot find the demo executable")?,
                };
                let config = ProcessConfig { exe, tags: None };
                Nodes {
                    kubelets: labs::cluster::start_process_kubelets(
                        &api, &client, NODES, config, ipam,
                    ),
                    docker: Vec::new(),
                }
            }
            LocalRuntime::Docker => {
                // The node label scope keeps this cluster's containers apart
                // from any other cluster's on the same engine.
                let scope = format!("demo{}-", std::process::id());
                start_docker_kubelets(&api, &client, NODES, &scope, ipam).await?
            }
        };
        let proxies = (1..=NODES)
            .map(|i| KubeProxy::start(api.client(), format!("node-{i}"), ProxyOptions::default()))
            .collect();
        let mut notes = vec![format!(
            "export KUBECONFIG={}   (kubectl works against it while the demo runs)",
            kubeconfig_path.display()
        )];
        let database = match self.runtime {
            LocalRuntime::Docker => {
                notes.push(
                    "no database with --runtime docker: a container cannot reach the host's \
                     loopback (the process runtime has one)"
                        .into(),
                );
                self.database = None;
                None
            }
            LocalRuntime::Process => {
                let spinner = n.spinner("starting a throwaway PostgreSQL");
                let password = uuid::Uuid::new_v4().simple().to_string();
                let started = demo_app::postgres::TempPostgres::new(demo_app::postgres::Options {
                    password: Some(password.clone()),
                    ..Default::default()
                })
                .await;
                spinner.finish_and_clear();
                match started {
                    Ok(pg) => {
                        notes.push(format!(
                            "database: a throwaway PostgreSQL on {}:{} (Cloud SQL's place)",
                            pg.host(),
                            pg.port()
                        ));
                        self.database = Some(DatabaseSettings {
                            address: format!("{}:{}", pg.host(), pg.port()),
                            user: demo_app::postgres::USER.into(),
                            password,
                            database: "app".into(),
                        });
                        Some(pg)
                    }
                    Err(e) => {
                        notes.push(format!("no database ({e}); the app runs without one"));
                        self.database = None;
                        None
                    }
                }
            }
        };
        let state = State {
            kubeconfig: kubeconfig_path.clone(),
            database: self.database.as_ref().map(|d| {
                (
                    d.address.clone(),
                    d.user.clone(),
                    d.password.clone(),
                    d.database.clone(),
                )
            }),
        };
        std::fs::write(self.state_file(), serde_json::to_string(&state)?)?;
        let info = ClusterInfo {
            description: format!(
                "the lab cluster, in this process: API server, controllers, scheduler, \
                 {NODES} nodes ({} runtime), a kube-proxy per node",
                match self.runtime {
                    LocalRuntime::Process => "process",
                    LocalRuntime::Docker => "docker",
                }
            ),
            notes,
            database: database.is_some(),
        };
        self.running = Some(Running {
            api,
            stop_server,
            server,
            components,
            nodes,
            proxies,
            kubeconfig: kubeconfig_path,
            database,
        });
        Ok((client, info))
    }
    // ANCHOR_END: start
}

#[async_trait(?Send)]
impl Target for LocalTarget {
    async fn cluster(&mut self, n: &mut Narrator) -> anyhow::Result<(kube::Client, ClusterInfo)> {
        let (client, info) = if self.options.attach {
            self.attach().await?
        } else if let (Some(client), Some(_)) = (&self.client, &self.running) {
            (client.clone(), ClusterInfo::default())
        } else {
            self.start(n).await?
        };
        self.client = Some(client.clone());
        Ok((client, info))
    }

    fn image_name(&self, version: &str) -> String {
        format!("{}:{version}", labs::images::APP_REPOSITORY)
    }

    async fn image(&mut self, version: &str, n: &mut Narrator) -> anyhow::Result<String> {
        let image = self.image_name(version);
        match self.runtime {
            LocalRuntime::Process => {}
            LocalRuntime::Docker => {
                let docker = labs::images::connect().await?;
                super::build_app_image(&docker, version, n).await?;
            }
        }
        Ok(image)
    }

    fn objects(
        &self,
        settings: &Settings,
        image: &str,
        version: &AppVersion,
    ) -> anyhow::Result<Objects> {
        Workload {
            service_port: SERVICE_PORT,
            pod_ip_as_localhost: self.runtime == LocalRuntime::Process,
            service_account: true,
            database: self.database.clone(),
        }
        .objects(settings, image, version)
    }

    async fn start_probe(
        &mut self,
        client: &kube::Client,
        service: &Service,
    ) -> anyhow::Result<Box<dyn Probe>> {
        let ns = service.metadata.namespace.as_deref().unwrap_or("default");
        let name = service.metadata.name.as_deref().unwrap_or(crate::APP);
        let live = kube::Api::<Service>::namespaced(client.clone(), ns)
            .get(name)
            .await?;
        let ip = live
            .spec
            .and_then(|s| s.cluster_ip)
            .context("the Service has no cluster IP")?;
        let url = format!("http://{ip}:{SERVICE_PORT}/");
        // The kube-proxies sync at most once a second: wait until the
        // Service answers before counting, so that the probe measures the
        // rollout, not the proxies' start.
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()?;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(r) = http.get(&url).send().await
                && r.status().is_success()
            {
                break;
            }
            anyhow::ensure!(
                tokio::time::Instant::now() < deadline,
                "the Service does not answer at {url}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Ok(Box::new(InProcessProbe::start(url, PROBE_RPS)))
    }

    fn commands(&self, step: Step, settings: &Settings) -> Vec<String> {
        match step {
            Step::Cluster => vec![format!(
                "cargo run -p labs -- cluster --nodes {NODES} --runtime {}",
                match settings.runtime {
                    LocalRuntime::Process => "process",
                    LocalRuntime::Docker => "docker",
                }
            )],
            Step::Image => match self.runtime {
                LocalRuntime::Process => vec![
                    "# the process runtime runs workbook/demo-app:<tag> as `demo app --app-version <tag>`: nothing to build"
                        .into(),
                ],
                LocalRuntime::Docker => ["v1", "v2"]
                    .iter()
                    .map(|v| labs::images::ImageSpec::app(v).cli())
                    .collect(),
            },
            _ => Vec::new(),
        }
    }

    async fn down(&mut self, _client: &kube::Client, n: &mut Narrator) -> anyhow::Result<()> {
        if self.options.attach {
            n.say(
                "  the local cluster itself stops with the `demo up` that runs it (Ctrl-C there)",
            );
        }
        Ok(())
    }

    async fn finish(self: Box<Self>, keep: bool, n: &mut Narrator) -> anyhow::Result<()> {
        let state_file = self.state_file();
        let Some(running) = self.running else {
            return Ok(());
        };
        if keep {
            n.say("");
            n.say("The cluster keeps running (--keep). In another terminal:");
            n.say(format!(
                "  export KUBECONFIG={}",
                running.kubeconfig.display()
            ));
            n.say("  kubectl get deployments,replicasets,pods,services");
            n.say("  cargo run -p demo -- status      (the single steps use this cluster)");
            n.say("Ctrl-C stops it.");
            let _ = tokio::signal::ctrl_c().await;
        }
        let spinner = n.spinner("stopping the cluster");
        let _ = std::fs::remove_file(&state_file);
        for proxy in running.proxies {
            proxy.stop().await;
        }
        running.components.shutdown().await?;
        // Stopping a kubelet stops its runtime's processes (or, on Docker,
        // the runtime removes its containers).
        running.nodes.stop().await;
        let _ = running.stop_server.send(());
        let _ = running.server.await;
        drop(running.api);
        drop(running.database);
        spinner.finish_and_clear();
        Ok(())
    }
}
