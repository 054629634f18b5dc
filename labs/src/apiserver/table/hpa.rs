//! `kubectl get hpa`: NAME, REFERENCE, TARGETS, MINPODS, MAXPODS,
//! REPLICAS, AGE. Upstream: `printHorizontalPodAutoscaler` and
//! `formatHPAMetrics` in `pkg/printers/internalversion/printers.go`.

use serde_json::{Value, json};

use super::columns::column;

pub fn columns() -> Vec<Value> {
    vec![
        super::columns::name_column(),
        column(
            "Reference",
            "string",
            0,
            "scaleTargetRef points to the target resource to scale, and is used to the pods for which metrics should be collected, as well as to actually change the replica count.",
        ),
        column(
            "Targets",
            "string",
            0,
            "metrics contains the specifications for which to use to calculate the desired replica count (the maximum replica count across all metrics will be used).",
        ),
        column(
            "MinPods",
            "string",
            0,
            "minReplicas is the lower limit for the number of replicas to which the autoscaler can scale down.",
        ),
        column(
            "MaxPods",
            "integer",
            0,
            "maxReplicas is the upper limit for the number of replicas to which the autoscaler can scale up.",
        ),
        column(
            "Replicas",
            "integer",
            0,
            "currentReplicas is current number of replicas of pods managed by this autoscaler, as last seen by the autoscaler.",
        ),
        super::columns::age_column(),
    ]
}

// ANCHOR: cells
pub fn cells(obj: &Value, age: String) -> Vec<Value> {
    let spec = &obj["spec"];
    let reference = format!(
        "{}/{}",
        spec["scaleTargetRef"]["kind"].as_str().unwrap_or(""),
        spec["scaleTargetRef"]["name"].as_str().unwrap_or("")
    );
    let min_pods = match spec["minReplicas"].as_i64() {
        Some(n) => n.to_string(),
        None => "<unset>".to_string(),
    };
    vec![
        obj["metadata"]["name"].clone(),
        json!(reference),
        json!(targets(obj)),
        json!(min_pods),
        json!(spec["maxReplicas"].as_i64().unwrap_or(0)),
        json!(obj["status"]["currentReplicas"].as_i64().unwrap_or(0)),
        json!(age),
    ]
}

/// `cpu: 30%/80%` per metric, `<unknown>` before the controller has
/// measured, at most two and then `+ N more...`.
pub fn targets(obj: &Value) -> String {
    let specs = obj["spec"]["metrics"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if specs.is_empty() {
        return "<none>".to_string();
    }
    let statuses = obj["status"]["currentMetrics"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let list: Vec<String> = specs
        .iter()
        .enumerate()
        .map(|(i, spec)| {
            let status = statuses.get(i).unwrap_or(&Value::Null);
            let q = |v: &Value| v.as_str().map(str::to_string);
            match spec["type"].as_str().unwrap_or("") {
                kind @ ("Resource" | "ContainerResource") => {
                    let source = if kind == "Resource" {
                        "resource"
                    } else {
                        "containerResource"
                    };
                    let (spec, status) = (&spec[source], &status[source]);
                    let name = spec["name"].as_str().unwrap_or("");
                    if let Some(target) = q(&spec["target"]["averageValue"]) {
                        let current = q(&status["current"]["averageValue"])
                            .unwrap_or_else(|| "<unknown>".into());
                        return format!("{name}: {current}/{target}");
                    }
                    let current = status["current"]["averageUtilization"]
                        .as_i64()
                        .map_or("<unknown>".into(), |u| format!("{u}%"));
                    let target = spec["target"]["averageUtilization"]
                        .as_i64()
                        .map_or("<auto>".into(), |u| format!("{u}%"));
                    format!("{name}: {current}/{target}")
                }
                "Pods" => format!(
                    "{}/{}",
                    q(&status["pods"]["current"]["averageValue"])
                        .unwrap_or_else(|| "<unknown>".into()),
                    q(&spec["pods"]["target"]["averageValue"]).unwrap_or_default()
                ),
                "Object" | "External" => {
                    let source = if spec["type"] == "Object" {
                        "object"
                    } else {
                        "external"
                    };
                    let target = &spec[source]["target"];
                    let current = &status[source]["current"];
                    match q(&target["averageValue"]) {
                        Some(t) => format!(
                            "{}/{t} (avg)",
                            q(&current["averageValue"]).unwrap_or_else(|| "<unknown>".into())
                        ),
                        None => format!(
                            "{}/{}",
                            q(&current["value"]).unwrap_or_else(|| "<unknown>".into()),
                            q(&target["value"]).unwrap_or_default()
                        ),
                    }
                }
                _ => "<unknown type>".to_string(),
            }
        })
        .collect();
    if list.len() > 2 {
        format!("{} + {} more...", list[..2].join(", "), list.len() - 2)
    } else {
        list.join(", ")
    }
}
// ANCHOR_END: cells

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_as_kubectl_prints_them() {
        let mut hpa = json!({"spec": {"metrics": [{"type": "Resource", "resource": {"name": "cpu",
            "target": {"type": "Utilization", "averageUtilization": 80}}}]}});
        assert_eq!(targets(&hpa), "cpu: <unknown>/80%");
        hpa["status"] = json!({"currentMetrics": [{"type": "Resource", "resource": {"name": "cpu",
            "current": {"averageUtilization": 30, "averageValue": "30m"}}}]});
        assert_eq!(targets(&hpa), "cpu: 30%/80%");
        assert_eq!(targets(&json!({"spec": {}})), "<none>");
        let m = json!({"type": "Pods", "pods": {"metric": {"name": "qps"}, "target": {"type": "AverageValue", "averageValue": "10"}}});
        let three = json!({"spec": {"metrics": [m, m, m]}});
        assert_eq!(targets(&three), "<unknown>/10, <unknown>/10 + 1 more...");
    }

    #[test]
    fn cells_follow_printers_go() {
        let hpa = json!({"metadata": {"name": "web"}, "spec": {
            "scaleTargetRef": {"kind": "Deployment", "name": "web"}, "maxReplicas": 4},
            "status": {"currentReplicas": 2}});
        let row = cells(&hpa, "5s".into());
        assert_eq!(
            row,
            vec![
                json!("web"),
                json!("Deployment/web"),
                json!("<none>"),
                json!("<unset>"),
                json!(4),
                json!(2),
                json!("5s")
            ]
        );
    }
}
