//! The controller manager: one process running many controllers, each a
//! task holding its own `kube::Client` (Kubernetes'
//! `kube-controller-manager`). It knows nothing about the API server's
//! insides: give it a client for an in-process router or for a server on
//! the other side of the network, it behaves the same.

use std::path::PathBuf;

use anyhow::Context;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::deployment::controller::{self as deployment_controller, DeploymentController};
use super::disruption::controller::{self as disruption_controller, DisruptionController};
use super::endpointslice::controller::{self as endpointslice_controller, EndpointSliceController};
use super::garbagecollector::controller::GarbageCollector;
use super::podautoscaler::controller::{self as hpa_controller, HorizontalController};
use super::replicaset::controller::{self as replicaset_controller, ReplicaSetController, Step};
use super::serviceaccount::controller::{
    self as serviceaccount_controller, ServiceAccountsController,
};

/// Which controllers to run, and what to report.
#[derive(Default)]
pub struct ManagerOptions {
    pub without_replicaset: bool,
    pub without_garbage_collector: bool,
    pub without_deployment: bool,
    pub without_endpointslice: bool,
    pub without_disruption: bool,
    pub without_serviceaccount: bool,
    pub without_horizontal_pod_autoscaler: bool,
    /// The ReplicaSet controller's steps, for a lab's timeline.
    pub replicaset_steps: Option<mpsc::UnboundedSender<Step>>,
    /// The Deployment controller's steps, for a lab's timeline.
    pub deployment_steps: Option<mpsc::UnboundedSender<deployment_controller::Step>>,
    pub deployment_metrics: Option<std::sync::Arc<deployment_controller::Metrics>>,
    /// Deterministic runs on a paused clock: the Deployment controller syncs
    /// only when the rest of the cluster is quiet (see
    /// [`deployment_controller::wait_until_quiet`]).
    pub lockstep: bool,
}

/// A controller of the manager, which [`ManagerOptions::without`] can leave out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Controller {
    Replicaset,
    GarbageCollector,
    Deployment,
    Endpointslice,
    Disruption,
    Serviceaccount,
    HorizontalPodAutoscaler,
}

impl ManagerOptions {
    /// All controllers except `without`.
    pub fn without(without: &[Controller]) -> Self {
        ManagerOptions {
            without_replicaset: without.contains(&Controller::Replicaset),
            without_garbage_collector: without.contains(&Controller::GarbageCollector),
            without_deployment: without.contains(&Controller::Deployment),
            without_endpointslice: without.contains(&Controller::Endpointslice),
            without_disruption: without.contains(&Controller::Disruption),
            without_serviceaccount: without.contains(&Controller::Serviceaccount),
            without_horizontal_pod_autoscaler: without
                .contains(&Controller::HorizontalPodAutoscaler),
            ..ManagerOptions::default()
        }
    }

    /// The names of the controllers these options run, for a banner.
    pub fn running(&self) -> Vec<&'static str> {
        let mut names = Vec::new();
        if !self.without_replicaset {
            names.push(replicaset_controller::COMPONENT);
        }
        if !self.without_deployment {
            names.push(deployment_controller::COMPONENT);
        }
        if !self.without_endpointslice {
            names.push(endpointslice_controller::COMPONENT);
        }
        if !self.without_horizontal_pod_autoscaler {
            names.push(hpa_controller::COMPONENT);
        }
        if !self.without_garbage_collector {
            names.push("garbage-collector");
        }
        if !self.without_disruption {
            names.push(disruption_controller::NAME);
        }
        if !self.without_serviceaccount {
            names.push(serviceaccount_controller::NAME);
        }
        names
    }
}

// ANCHOR: manager
/// Running controllers. Dropping it does not stop them; call
/// [`ControllerManager::shutdown`].
pub struct ControllerManager {
    shutdown: CancellationToken,
    tasks: JoinSet<anyhow::Result<()>>,
}

impl ControllerManager {
    /// Starts the controllers as tasks on the current runtime.
    pub fn start(client: kube::Client, options: ManagerOptions) -> ControllerManager {
        let shutdown = CancellationToken::new();
        let mut tasks = JoinSet::new();
        if !options.without_replicaset {
            let controller = ReplicaSetController::new(
                client.clone(),
                replicaset_controller::Options {
                    workers: 0,
                    steps: options.replicaset_steps,
                },
            );
            tasks.spawn(controller.run(shutdown.clone()));
        }
        if !options.without_deployment {
            let controller = DeploymentController::new(
                client.clone(),
                deployment_controller::Options {
                    workers: 0,
                    steps: options.deployment_steps,
                    metrics: options.deployment_metrics,
                    lockstep: options.lockstep,
                },
            );
            tasks.spawn(controller.run(shutdown.clone()));
        }
        if !options.without_endpointslice {
            let controller = EndpointSliceController::new(
                client.clone(),
                endpointslice_controller::Options::default(),
            );
            tasks.spawn(controller.run(shutdown.clone()));
        }
        if !options.without_disruption {
            tasks.spawn(DisruptionController::new(client.clone()).run(shutdown.clone()));
        }
        if !options.without_serviceaccount {
            tasks.spawn(ServiceAccountsController::new(client.clone()).run(shutdown.clone()));
        }
        if !options.without_horizontal_pod_autoscaler {
            let controller =
                HorizontalController::new(client.clone(), hpa_controller::Options::default());
            tasks.spawn(controller.run(shutdown.clone()));
        }
        if !options.without_garbage_collector {
            tasks.spawn(GarbageCollector::new(client).run(shutdown.clone()));
        }
        ControllerManager { shutdown, tasks }
    }

    /// The signal the controllers stop on.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Stops every controller gracefully: informers stop watching, queues
    /// stop handing out keys, and each worker finishes the sync it is in.
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        self.wait().await
    }

    /// Waits until every controller has stopped (after a shutdown, or
    /// because one failed).
    pub async fn wait(&mut self) -> anyhow::Result<()> {
        while let Some(result) = self.tasks.join_next().await {
            result.context("controller task panicked")??;
        }
        Ok(())
    }

    /// Stops every controller at once, mid-sync, as a crash would.
    pub fn abort(mut self) {
        self.shutdown.cancel();
        self.tasks.abort_all();
    }
}
// ANCHOR_END: manager

/// `labs controller-manager`: connect to a running API server through a
/// kubeconfig (as kubectl does) and run the controllers until Ctrl-C.
pub async fn run(kubeconfig: Option<PathBuf>, without: &[Controller]) -> anyhow::Result<()> {
    let client = match &kubeconfig {
        Some(path) => {
            let config = kube::config::Kubeconfig::read_from(path)
                .with_context(|| format!("cannot read the kubeconfig {}", path.display()))?;
            let config = kube::Config::from_custom_kubeconfig(config, &Default::default())
                .await
                .with_context(|| format!("bad kubeconfig {}", path.display()))?;
            kube::Client::try_from(config)?
        }
        None => kube::Client::try_default()
            .await
            .context("no kubeconfig (set KUBECONFIG or pass --kubeconfig)")?,
    };
    let version = client
        .apiserver_version()
        .await
        .context("cannot reach the API server")?;
    let options = ManagerOptions::without(without);
    println!(
        "controller-manager: connected to Kubernetes {}; running {}",
        version.git_version,
        options.running().join(", ")
    );
    let mut manager = ControllerManager::start(client, options);
    tokio::select! {
        result = manager.wait() => return result,
        _ = crate::machinery::signal::shutdown_signal() => {}
    }
    manager.shutdown().await?;
    println!("controller-manager stopped");
    Ok(())
}
