//! The column definitions of each kind's table: names, types, which are
//! shown only with `-o wide` (priority 1), and the descriptions
//! `kubectl explain`-style clients show.
//!
//! Upstream: the `columnDefinitions` registered per kind in `AddHandlers`,
//! `pkg/printers/internalversion/printers.go`.

use serde_json::{Value, json};

/// One column: `priority` 0 is always shown, 1 only with `-o wide`.
pub(super) fn column(name: &str, ty: &str, priority: i64, description: &str) -> Value {
    let format = if name == "Name" { "name" } else { "" };
    json!({"name": name, "type": ty, "format": format, "description": description, "priority": priority})
}

pub(super) fn name_column() -> Value {
    column(
        "Name",
        "string",
        0,
        "Name must be unique within a namespace.",
    )
}

pub(super) fn age_column() -> Value {
    column(
        "Age",
        "string",
        0,
        "CreationTimestamp is a timestamp representing the server time when this object was created.",
    )
}

/// The column definitions for a kind (a `Name`/`Age` pair for kinds
/// without their own printer).
pub fn column_definitions(kind: &str) -> Vec<Value> {
    let containers = || {
        column(
            "Containers",
            "string",
            1,
            "Names of each container in the template.",
        )
    };
    let images = || {
        column(
            "Images",
            "string",
            1,
            "Images referenced by each container in the template.",
        )
    };
    let selector = || column("Selector", "string", 1, "Label selector for pods.");
    match kind {
        "Pod" => vec![
            name_column(),
            column(
                "Ready",
                "string",
                0,
                "The aggregate readiness state of this pod for accepting traffic.",
            ),
            column(
                "Status",
                "string",
                0,
                "The aggregate status of the containers in this pod.",
            ),
            column(
                "Restarts",
                "string",
                0,
                "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.",
            ),
            age_column(),
            column("IP", "string", 1, "IP address allocated to the pod."),
            column(
                "Node",
                "string",
                1,
                "NodeName is the node the pod is bound to.",
            ),
            column(
                "Nominated Node",
                "string",
                1,
                "The node the scheduler nominated for preemption.",
            ),
            column(
                "Readiness Gates",
                "string",
                1,
                "Conditions evaluated for pod readiness.",
            ),
        ],
        "Deployment" => vec![
            name_column(),
            column("Ready", "string", 0, "Number of the pod with ready state"),
            column(
                "Up-to-date",
                "string",
                0,
                "Total number of non-terminated pods targeted by this deployment that have the desired template spec.",
            ),
            column(
                "Available",
                "string",
                0,
                "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment.",
            ),
            age_column(),
            containers(),
            images(),
            selector(),
        ],
        "ReplicaSet" => vec![
            name_column(),
            column(
                "Desired",
                "integer",
                0,
                "Replicas is the number of desired replicas.",
            ),
            column(
                "Current",
                "integer",
                0,
                "Replicas is the most recently observed number of replicas.",
            ),
            column(
                "Ready",
                "integer",
                0,
                "The number of ready replicas for this replica set.",
            ),
            age_column(),
            containers(),
            images(),
            selector(),
        ],
        "Service" => vec![
            name_column(),
            column("Type", "string", 0, "How the Service is exposed."),
            column(
                "Cluster-IP",
                "string",
                0,
                "The IP address of the service, allocated by the master.",
            ),
            column(
                "External-IP",
                "string",
                0,
                "One or more external IP addresses of the service.",
            ),
            column("Port(s)", "string", 0, "The ports exposed by this service."),
            age_column(),
            column(
                "Selector",
                "string",
                1,
                "Route service traffic to pods with label keys and values matching this selector.",
            ),
        ],
        "Node" => vec![
            name_column(),
            column("Status", "string", 0, "The status of the node"),
            column("Roles", "string", 0, "The roles of the node"),
            age_column(),
            column(
                "Version",
                "string",
                0,
                "Kubelet Version reported by the node.",
            ),
            column(
                "Internal-IP",
                "string",
                1,
                "List of addresses reachable to the node.",
            ),
            column(
                "External-IP",
                "string",
                1,
                "List of addresses reachable to the node.",
            ),
            column("OS-Image", "string", 1, "OS Image reported by the node."),
            column(
                "Kernel-Version",
                "string",
                1,
                "Kernel Version reported by the node.",
            ),
            column(
                "Container-Runtime",
                "string",
                1,
                "ContainerRuntime Version reported by the node.",
            ),
        ],
        "Namespace" => vec![
            name_column(),
            column("Status", "string", 0, "The status of the namespace"),
            age_column(),
        ],
        "Event" => vec![
            column(
                "Last Seen",
                "string",
                0,
                "The time at which the most recent occurrence of this event was recorded.",
            ),
            column("Type", "string", 0, "Type of this event (Normal, Warning)."),
            column(
                "Reason",
                "string",
                0,
                "A short, machine understandable string that gives the reason for this event.",
            ),
            column(
                "Object",
                "string",
                0,
                "The object that this event is about.",
            ),
            column(
                "Subobject",
                "string",
                1,
                "The part of the object the event is about.",
            ),
            column("Source", "string", 1, "The component reporting this event."),
            column(
                "Message",
                "string",
                0,
                "A human-readable description of the event.",
            ),
            column(
                "First Seen",
                "string",
                1,
                "The time at which the event was first recorded.",
            ),
            column(
                "Count",
                "string",
                1,
                "The number of times this event has occurred.",
            ),
            column(
                "Name",
                "string",
                1,
                "Name must be unique within a namespace.",
            ),
        ],
        "ConfigMap" => vec![
            name_column(),
            column("Data", "string", 0, "Number of keys."),
            age_column(),
        ],
        "Secret" => vec![
            name_column(),
            column("Type", "string", 0, "The type of secret"),
            column("Data", "string", 0, "Number of keys."),
            age_column(),
        ],
        "Endpoints" => vec![
            name_column(),
            column("Endpoints", "string", 0, "Endpoints of the service."),
            age_column(),
        ],
        "EndpointSlice" => vec![
            name_column(),
            column(
                "AddressType",
                "string",
                0,
                "addressType specifies the type of address carried by this EndpointSlice.",
            ),
            column(
                "Ports",
                "string",
                0,
                "ports specifies the list of network ports exposed by each endpoint in this slice.",
            ),
            column(
                "Endpoints",
                "string",
                0,
                "endpoints is a list of unique endpoints in this slice.",
            ),
            age_column(),
        ],
        "Lease" => vec![
            name_column(),
            column(
                "Holder",
                "string",
                0,
                "holderIdentity contains the identity of the holder of a current lease.",
            ),
            age_column(),
        ],
        "PodDisruptionBudget" => vec![
            name_column(),
            column(
                "Min Available",
                "string",
                0,
                "The minimum number or percentage of available pods this budget requires.",
            ),
            column(
                "Max Unavailable",
                "string",
                0,
                "The maximum number or percentage of unavailable pods this budget requires.",
            ),
            column(
                "Allowed Disruptions",
                "integer",
                0,
                "Calculated number of pods that may be disrupted at this time.",
            ),
            age_column(),
        ],
        "ServiceAccount" => vec![
            name_column(),
            column(
                "Secrets",
                "string",
                0,
                "Secrets is a list of the secrets in the same namespace that pods running using this ServiceAccount are allowed to use.",
            ),
            age_column(),
        ],
        "HorizontalPodAutoscaler" => super::hpa::columns(),
        _ => vec![name_column(), age_column()],
    }
}
