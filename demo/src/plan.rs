//! The demo's steps and what each one does on each target.
//!
//! This is the table in DESIGN.md ("The demo's targets") as data, so that the
//! plan the binary prints and the book's demo chapter cannot disagree.

use crate::targets::TargetKind as Target;

/// One step of the demo.
pub struct Step {
    pub title: &'static str,
    pub local: &'static str,
    pub kind: &'static str,
    pub gke: &'static str,
}

impl Step {
    fn on(&self, target: Target) -> &'static str {
        match target {
            Target::Local => self.local,
            Target::Kind => self.kind,
            Target::Gke => self.gke,
        }
    }
}

/// The talk's demo ("やること"), in order.
pub const STEPS: &[Step] = &[
    Step {
        title: "Cluster",
        local: "start the embedded lab cluster (API server, controllers, scheduler, kubelets) on loopback",
        kind: "use the existing kind cluster (kubeconfig context kind-<name>)",
        gke: "use the existing GKE cluster (context from `gcloud container clusters get-credentials`)",
    },
    Step {
        title: "Image",
        local: "process runtime: run the built demo-app (workbook/demo-app:v1) as a child process; docker runtime: build the image with bollard",
        kind: "build workbook/demo-app:v1 with bollard and load it into every node (`ctr -n k8s.io images import`)",
        gke: "build the image and push it to Artifact Registry (REGION-docker.pkg.dev/PROJECT/REPO/app:v1)",
    },
    Step {
        title: "Secret",
        local: "store the app's database settings as a Secret",
        kind: "store the app's database settings as a Secret",
        gke: "reach Cloud SQL through the Cloud SQL Auth Proxy v2 as a native sidecar, with Workload Identity",
    },
    Step {
        title: "Deploy",
        local: "server-side apply the Deployment (3 replicas) and its Service",
        kind: "server-side apply the Deployment (3 replicas) and its Service",
        gke: "server-side apply the Deployment (3 replicas) and its Service",
    },
    Step {
        title: "Roll out",
        local: "change the image to v2 and watch the rolling update: ReplicaSets, pods, and a traffic probe counting versions and errors",
        kind: "change the image to v2 and watch the rolling update (kubectl's rollout-status rules, traffic probe)",
        gke: "change the image to v2 and watch the rolling update (kubectl's rollout-status rules, traffic probe)",
    },
    Step {
        title: "History and undo",
        local: "show the revision history with change causes, then roll back to v1 the way `kubectl rollout undo` does",
        kind: "show the revision history with change causes, then roll back to v1 the way `kubectl rollout undo` does",
        gke: "show the revision history with change causes, then roll back to v1 the way `kubectl rollout undo` does",
    },
];

/// The plan as the binary prints it.
pub fn render(target: Target) -> String {
    let name = match target {
        Target::Local => "the embedded lab cluster",
        Target::Kind => "a kind cluster",
        Target::Gke => "a GKE cluster",
    };
    let mut out = format!("The rolling-update demo, on {name}. The steps:\n\n");
    for (i, step) in STEPS.iter().enumerate() {
        out.push_str(&format!(
            "{}. {:<17} {}\n",
            i + 1,
            step.title,
            step.on(target)
        ));
    }
    out.push_str("\n`cargo run -p demo -- run` walks them; `--help` lists the single steps.\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_target_gets_every_step() {
        for target in [Target::Local, Target::Kind, Target::Gke] {
            let plan = render(target);
            for (i, step) in STEPS.iter().enumerate() {
                assert!(
                    plan.contains(&format!("{}. {}", i + 1, step.title)),
                    "{plan}"
                );
            }
        }
    }

    #[test]
    fn gke_uses_artifact_registry_and_the_proxy_sidecar() {
        let plan = render(Target::Gke);
        assert!(plan.contains("Artifact Registry"));
        assert!(plan.contains("native sidecar"));
        assert!(!plan.contains(":latest"), "never :latest");
    }
}
