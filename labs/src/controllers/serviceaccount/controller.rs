//! The service-account controller's plumbing: informers on Namespaces and
//! ServiceAccounts, a work queue of namespace names, and a sync that
//! creates what [`super::missing`] says is missing.

use std::collections::BTreeSet;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::api::{Api, PostParams};
use kube::runtime::reflector::{ObjectRef, Store};
use tokio_util::sync::CancellationToken;

use super::{MANAGED, missing};
use crate::machinery::informer::{EventHandler, Informer};
use crate::machinery::workqueue::{Action, WorkQueue, run_controller};

/// The name the controller manager knows it by.
pub const NAME: &str = "serviceaccount-controller";

struct Shared {
    client: kube::Client,
    namespaces: Store<Namespace>,
    accounts: Store<ServiceAccount>,
    queue: Arc<WorkQueue>,
}

pub struct ServiceAccountsController {
    shared: Arc<Shared>,
    namespace_informer: Informer<Namespace>,
    account_informer: Informer<ServiceAccount>,
}

impl ServiceAccountsController {
    pub fn new(client: kube::Client) -> Self {
        let namespace_informer = Informer::new(Api::<Namespace>::all(client.clone()));
        let account_informer = Informer::new(Api::<ServiceAccount>::all(client.clone()));
        let shared = Arc::new(Shared {
            client,
            namespaces: namespace_informer.store(),
            accounts: account_informer.store(),
            queue: WorkQueue::new(),
        });
        ServiceAccountsController {
            shared,
            namespace_informer,
            account_informer,
        }
    }

    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let shared = self.shared;
        let informers = [
            tokio::spawn(self.namespace_informer.run(
                Arc::new(NamespaceEvents(Arc::clone(&shared.queue))),
                shutdown.clone(),
            )),
            tokio::spawn(self.account_informer.run(
                Arc::new(AccountEvents(Arc::clone(&shared.queue))),
                shutdown.clone(),
            )),
        ];
        let synced = async {
            shared.namespaces.wait_until_ready().await?;
            shared.accounts.wait_until_ready().await
        };
        let workers = Arc::clone(&shared);
        run_controller(
            NAME,
            Arc::clone(&shared.queue),
            synced,
            1,
            shutdown.clone(),
            move |ns: String| {
                let shared = Arc::clone(&workers);
                async move { shared.sync(&ns).await }
            },
        )
        .await?;
        for informer in informers {
            let _ = informer.await;
        }
        Ok(())
    }
}

/// A namespace added or changed: make sure its accounts exist.
struct NamespaceEvents(Arc<WorkQueue>);

impl EventHandler<Namespace> for NamespaceEvents {
    fn on_add(&self, ns: &Namespace) {
        self.0.add(ns.metadata.name.clone().unwrap_or_default());
    }
    fn on_update(&self, _old: &Namespace, ns: &Namespace) {
        self.0.add(ns.metadata.name.clone().unwrap_or_default());
    }
    fn on_delete(&self, _ns: &Namespace) {}
}

/// A managed account deleted: put it back (upstream's
/// `serviceAccountDeleted`).
struct AccountEvents(Arc<WorkQueue>);

impl EventHandler<ServiceAccount> for AccountEvents {
    fn on_add(&self, _sa: &ServiceAccount) {}
    fn on_update(&self, _old: &ServiceAccount, _sa: &ServiceAccount) {}
    fn on_delete(&self, sa: &ServiceAccount) {
        if MANAGED.contains(&sa.metadata.name.as_deref().unwrap_or_default()) {
            self.0
                .add(sa.metadata.namespace.clone().unwrap_or_default());
        }
    }
}

impl Shared {
    // ANCHOR: sync
    async fn sync(&self, ns: &str) -> anyhow::Result<Action> {
        let Some(namespace) = self.namespaces.get(&ObjectRef::new(ns)) else {
            return Ok(Action::AwaitChange);
        };
        let existing: BTreeSet<String> = self
            .accounts
            .state()
            .iter()
            .filter(|sa| sa.metadata.namespace.as_deref() == Some(ns))
            .filter_map(|sa| sa.metadata.name.clone())
            .collect();
        let api: Api<ServiceAccount> = Api::namespaced(self.client.clone(), ns);
        for sa in missing(&namespace, &existing) {
            match api.create(&PostParams::default(), &sa).await {
                Ok(_) => {}
                // Created meanwhile (our cache lags): that is the goal.
                Err(kube::Error::Api(e)) if e.code == 409 => {}
                // The namespace went away or is terminating.
                Err(kube::Error::Api(e)) if e.code == 404 || e.code == 403 => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(Action::AwaitChange)
    }
    // ANCHOR_END: sync
}
