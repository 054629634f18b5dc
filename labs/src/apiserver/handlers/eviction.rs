//! `POST pods/{name}/eviction`: a delete that asks first.
//!
//! Deleting a pod is always allowed. *Evicting* it is a deletion the
//! cluster may refuse: if a PodDisruptionBudget covers the pod and allows
//! no more disruptions right now, the answer is 429 TooManyRequests and the
//! pod stays. `kubectl drain` evicts every pod of a node and retries a
//! refused eviction every 5 s, so a drain waits for the budget instead of
//! taking down the last replicas of a service. (A node dying is an
//! *involuntary* disruption; no budget can refuse it. Budgets only guard
//! the voluntary ones: drains, upgrades, an autoscaler removing a node.)
//!
//! The budget's arithmetic lives in the disruption controller, which keeps
//! `status.disruptionsAllowed`; the eviction only reads it, decrements it
//! and notes the pod in `status.disruptedPods` — one compare-and-swap on the
//! budget, so two evictions racing for the last allowed disruption cannot
//! both win. The controller forgets a noted pod when it is gone, or after
//! two minutes if it never went.
//!
//! Upstream: `pkg/registry/core/pod/storage/eviction.go` (`EvictionREST`).

use serde_json::{Value, json};

use super::delete::{DeleteOptions, delete_one, delete_options_from};
use super::storage::{Write, guaranteed_update, object_from_kv};
use super::{Reply, key_of, meta_str, target_name};
use crate::apiserver::ApiServer;
use crate::apiserver::request::Call;
use crate::apiserver::resources::{self, Resource};
use crate::apiserver::selector::LabelSelector;
use crate::apiserver::status::{self, ApiError};

/// Upstream's `MaxDisruptedPodSize`: evictions the controller has not
/// confirmed yet, per budget.
const MAX_DISRUPTED_PODS: usize = 2000;

/// How often a conflict on the pod is retried (upstream's `EvictionsRetry`
/// has 20 steps).
const RETRIES: usize = 20;

/// The message of every refusal by a budget, word for word upstream's:
/// kubectl drain prints it while it waits.
pub const VIOLATES_BUDGET: &str =
    "Cannot evict pod as it would violate the pod's disruption budget.";

// ANCHOR: evict
pub fn evict(api: &ApiServer, call: &Call) -> Result<Reply, ApiError> {
    let pods = call.target.resource;
    let name = target_name(call);
    let eviction = call.decode_object()?;
    check_eviction_kind(&eviction)?;
    if meta_str(&eviction, "name") != name {
        return Err(ApiError::bad_request(
            "name in URL does not match name in Eviction object",
        ));
    }
    // What the create handler checks for every object posted, this one
    // included (upstream's `EnsureObjectNamespaceMatchesRequestNamespace`).
    let ns = call.target.namespace.as_deref().unwrap_or_default();
    let body_ns = meta_str(&eviction, "namespace");
    if !body_ns.is_empty() && body_ns != ns {
        return Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        ));
    }
    let mut opts = delete_options_from(eviction.get("deleteOptions").unwrap_or(&Value::Null))?;
    opts.dry_run |= call.query.dry_run()?;
    let key = key_of(pods, call);

    // A pod that is not running (Pending, finished, already terminating)
    // disrupts nothing more by going: it is deleted without asking a
    // budget. Conflicts (the pod changed under us) are retried, unless the
    // caller pinned a resourceVersion.
    let mut pod = Value::Null;
    for attempt in 1..=RETRIES {
        let kv = api
            .store()
            .get(&key)
            .ok_or_else(|| ApiError::not_found(pods, name))?;
        pod = object_from_kv(&kv);
        if !can_ignore_budget(&pod) {
            break;
        }
        // A Pending pod could become ready (and count for a budget) before
        // the delete: pin the version we looked at (upstream's
        // `shouldEnforceResourceVersion`).
        let mut ignore_opts = opts.clone();
        let terminal = matches!(
            pod.pointer("/status/phase").and_then(Value::as_str),
            Some("Succeeded" | "Failed")
        ) || pod.pointer("/metadata/deletionTimestamp").is_some();
        if !terminal && opts.resource_version.is_none() {
            ignore_opts.resource_version = Some(meta_str(&pod, "resourceVersion").to_string());
        }
        match add_condition_and_delete(api, pods, &key, name, &ignore_opts) {
            Err(e) if e.code == 409 && opts.resource_version.is_none() && attempt < RETRIES => {
                continue;
            }
            Err(e) => return Err(e),
            Ok(()) => return Ok(Reply::created(status::success(201))),
        }
    }

    let budgets = budgets_of(api, ns, &pod);
    if budgets.len() > 1 {
        // Upstream answers with a bare Status of code 500 and no reason.
        return Err(ApiError {
            code: 500,
            reason: "",
            message: "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.".into(),
            details: None,
        });
    }
    let mut delete_opts = opts.clone();
    let mut pinned = false;
    if let Some((pdb_key, pdb)) = budgets.first() {
        let ready = is_ready(&pod);
        let policy = pdb
            .pointer("/spec/unhealthyPodEvictionPolicy")
            .and_then(Value::as_str);
        let status_int = |f: &str| {
            pdb.pointer(&format!("/status/{f}"))
                .and_then(Value::as_i64)
                .unwrap_or(0)
        };
        // An unready pod counts for nothing in the budget, so taking it
        // costs no disruption: delete it without decrementing — as long as
        // the budget is met (or the budget says unhealthy pods may always
        // go). The delete is pinned to the version we looked at, in case
        // the pod becomes ready meanwhile.
        let unready_goes_free = !ready
            && (policy == Some("AlwaysAllow")
                || (status_int("currentHealthy") >= status_int("desiredHealthy")
                    && status_int("desiredHealthy") > 0));
        if unready_goes_free {
            pinned = true;
            delete_opts.resource_version = Some(meta_str(&pod, "resourceVersion").to_string());
        } else {
            check_and_decrement(api, pdb_key, name, opts.dry_run)?;
        }
    }
    match add_condition_and_delete(api, pods, &key, name, &delete_opts) {
        // We pinned the version and the pod changed: ask the client to
        // come back (kubectl drain retries a 429).
        Err(e) if e.code == 409 && pinned && opts.resource_version.is_none() => {
            let pdb_name = budgets
                .first()
                .map(|(_, p)| meta_str(p, "name").to_string())
                .unwrap_or_default();
            Err(still_processing(&pdb_name))
        }
        Err(e) => Err(e),
        Ok(()) => Ok(Reply::created(status::success(201))),
    }
}
// ANCHOR_END: evict

/// The body must be an Eviction of policy/v1 (or the older v1beta1, whose
/// shape is the same).
fn check_eviction_kind(eviction: &Value) -> Result<(), ApiError> {
    let api_version = eviction
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or("");
    let kind = eviction.get("kind").and_then(Value::as_str).unwrap_or("");
    if !["", "policy/v1", "policy/v1beta1"].contains(&api_version)
        || !["", "Eviction"].contains(&kind)
    {
        return Err(ApiError::bad_request(format!(
            "Eviction in version \"v1\" cannot be handled as a Eviction: no kind \"{kind}\" is registered for version \"{api_version}\""
        )));
    }
    Ok(())
}

/// Upstream's `canIgnorePDB`: a pod that is Pending, Succeeded or Failed,
/// or already being deleted. (Every pod is created `Pending`; a pod
/// without a phase is not among these, as upstream.)
fn can_ignore_budget(pod: &Value) -> bool {
    let phase = pod
        .pointer("/status/phase")
        .and_then(Value::as_str)
        .unwrap_or("");
    matches!(phase, "Pending" | "Succeeded" | "Failed")
        || pod.pointer("/metadata/deletionTimestamp").is_some()
}

/// `Ready=True`: what the budgets count as healthy.
fn is_ready(pod: &Value) -> bool {
    pod.pointer("/status/conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Ready" && c["status"] == "True")
}

/// The budgets in the pod's namespace that cover it, with their store keys.
fn budgets_of(api: &ApiServer, ns: &str, pod: &Value) -> Vec<(String, Value)> {
    let r = pdb_resource();
    let (kvs, _) = api.store().list(&r.prefix(Some(ns)));
    kvs.iter()
        .map(object_from_kv)
        .filter(|pdb| covers(pdb, pod))
        .map(|pdb| (r.key(Some(ns), meta_str(&pdb, "name")), pdb))
        .collect()
}

/// Does the budget cover the pod? policy/v1's rule, the same the disruption
/// controller counts by (`metav1.LabelSelectorAsSelector`): no selector
/// covers nothing, an empty one (`{}`) every pod of the namespace. (In
/// policy/v1beta1 an empty selector covered nothing; v1 changed that.)
fn covers(pdb: &Value, pod: &Value) -> bool {
    match pdb.pointer("/spec/selector") {
        None | Some(Value::Null) => false,
        Some(selector) => {
            LabelSelector::from_api_value(selector).is_ok_and(|sel| sel.matches_object(pod))
        }
    }
}

fn pdb_resource() -> &'static Resource {
    resources::by_kind("PodDisruptionBudget").expect("poddisruptionbudgets are served")
}

// ANCHOR: check_and_decrement
/// Upstream's `checkAndDecrement`, as one compare-and-swap on the budget:
/// refuse while `disruptionsAllowed` is 0 (or the controller has not seen
/// the budget's latest spec), else take one disruption and note the pod
/// in `disruptedPods` so that the controller does not count it as healthy
/// while it terminates.
fn check_and_decrement(
    api: &ApiServer,
    pdb_key: &str,
    pod_name: &str,
    dry_run: bool,
) -> Result<(), ApiError> {
    let r = pdb_resource();
    guaranteed_update(api, pdb_key, |kv| {
        let pdb_name = pdb_key.rsplit('/').next().unwrap_or_default();
        let kv = kv.ok_or_else(|| ApiError::not_found(r, pdb_name))?;
        let mut pdb = object_from_kv(kv);
        let int = |p: &str| pdb.pointer(p).and_then(Value::as_i64).unwrap_or(0);
        if int("/status/observedGeneration") < int("/metadata/generation") {
            return Err(still_processing(pdb_name));
        }
        let allowed = int("/status/disruptionsAllowed");
        if allowed < 0 {
            return Err(budget_forbidden(
                pdb_name,
                "pdb disruptions allowed is negative",
            ));
        }
        let disrupted = pdb
            .pointer("/status/disruptedPods")
            .and_then(Value::as_object)
            .map_or(0, |m| m.len());
        if disrupted > MAX_DISRUPTED_PODS {
            return Err(budget_forbidden(
                pdb_name,
                "DisruptedPods map too big - too many evictions not confirmed by PDB controller",
            ));
        }
        if allowed == 0 {
            return Err(too_many_requests(
                0,
                &format!(
                    "The disruption budget {pdb_name} needs {} healthy pods and has {} currently",
                    int("/status/desiredHealthy"),
                    int("/status/currentHealthy")
                ),
            ));
        }
        pdb["status"]["disruptionsAllowed"] = json!(allowed - 1);
        if allowed - 1 == 0 {
            set_disruption_allowed_condition(&mut pdb);
        }
        if dry_run {
            return Ok(Write::Keep(pdb));
        }
        let status = pdb["status"].as_object_mut().expect("status was just set");
        let disrupted = status.entry("disruptedPods").or_insert_with(|| json!({}));
        if !disrupted.is_object() {
            *disrupted = json!({});
        }
        disrupted[pod_name] = json!(super::now());
        Ok(Write::Update(pdb))
    })?;
    Ok(())
}
// ANCHOR_END: check_and_decrement

/// 403 for a budget whose status cannot be trusted. Upstream names the
/// resource in the singular here (`policy.Resource("poddisruptionbudget")`).
fn budget_forbidden(pdb_name: &str, why: &str) -> ApiError {
    ApiError {
        code: 403,
        reason: "Forbidden",
        message: format!("poddisruptionbudget.policy \"{pdb_name}\" is forbidden: {why}"),
        details: Some(json!({"name": pdb_name, "group": "policy", "kind": "poddisruptionbudget"})),
    }
}

/// 429 TooManyRequests with a `DisruptionBudget` cause (upstream's
/// `NewTooManyRequests` plus the cause).
fn too_many_requests(retry_after: i64, cause: &str) -> ApiError {
    let mut details = json!({"causes": [{"reason": "DisruptionBudget", "message": cause}]});
    if retry_after > 0 {
        details["retryAfterSeconds"] = json!(retry_after);
    }
    ApiError {
        code: 429,
        reason: "TooManyRequests",
        message: VIOLATES_BUDGET.into(),
        details: Some(details),
    }
}

/// The budget changed and its controller has not caught up yet: come back
/// in 10 s (upstream's `createTooManyRequestsError`).
fn still_processing(pdb_name: &str) -> ApiError {
    too_many_requests(
        10,
        &format!("The disruption budget {pdb_name} is still being processed by the server."),
    )
}

/// Upstream's `UpdateDisruptionAllowedCondition` for a budget that just
/// reached 0: `DisruptionAllowed=False`, reason `InsufficientPods`.
fn set_disruption_allowed_condition(pdb: &mut Value) {
    let generation = pdb
        .pointer("/status/observedGeneration")
        .cloned()
        .unwrap_or(json!(0));
    set_condition(
        pdb,
        json!({
            "type": "DisruptionAllowed",
            "status": "False",
            "reason": "InsufficientPods",
            "message": "",
            "observedGeneration": generation,
        }),
    );
}

// ANCHOR: add_condition_and_delete
/// Marks the pod `DisruptionTarget=True` (reason `EvictionByEvictionAPI`:
/// whoever watches the pod — its controller, a Job's failure policy — can
/// tell an eviction from a crash), then deletes it gracefully with the
/// Eviction's `deleteOptions`. Upstream's `addConditionAndDeletePod`.
fn add_condition_and_delete(
    api: &ApiServer,
    pods: &Resource,
    key: &str,
    name: &str,
    opts: &DeleteOptions,
) -> Result<(), ApiError> {
    let mut opts = opts.clone();
    if !opts.dry_run {
        let updated = guaranteed_update(api, key, |kv| {
            let kv = kv.ok_or_else(|| ApiError::not_found(pods, name))?;
            let mut pod = object_from_kv(kv);
            // The preconditions are checked here, before the condition is
            // written, in upstream's words (the delete's own check, later,
            // words it differently).
            if let Some(uid) = &opts.uid
                && uid != meta_str(&pod, "uid")
            {
                return Err(precondition_failed(
                    name,
                    format!(
                        "the UID in the precondition ({uid}) does not match the UID in record ({}). The object might have been deleted and then recreated",
                        meta_str(&pod, "uid")
                    ),
                ));
            }
            if let Some(rv) = &opts.resource_version
                && *rv != kv.mod_revision.to_string()
            {
                return Err(precondition_failed(
                    name,
                    format!(
                        "the ResourceVersion in the precondition ({rv}) does not match the ResourceVersion in record ({}). The object might have been modified",
                        kv.mod_revision
                    ),
                ));
            }
            set_condition(
                &mut pod,
                json!({
                    "type": "DisruptionTarget",
                    "status": "True",
                    "reason": "EvictionByEvictionAPI",
                    "message": "Eviction API: evicting",
                }),
            );
            Ok(Write::Update(pod))
        })?;
        // We wrote the pod: a pinned version moves with our own write.
        if opts.resource_version.is_some() {
            opts.resource_version = Some(meta_str(&updated, "resourceVersion").to_string());
        }
    }
    delete_one(api, pods, key, name, &opts, opts.dry_run)?;
    Ok(())
}
// ANCHOR_END: add_condition_and_delete

/// 409 for a precondition of the Eviction's `deleteOptions` that the pod
/// does not meet. Upstream names the resource `Pod` here (a GroupResource
/// built by hand), not `pods`.
fn precondition_failed(name: &str, why: String) -> ApiError {
    ApiError {
        code: 409,
        reason: "Conflict",
        message: format!("Operation cannot be fulfilled on Pod \"{name}\": {why}"),
        details: Some(json!({"name": name, "kind": "Pod"})),
    }
}

/// Puts `condition` into `status.conditions`, replacing the one of the
/// same type, and keeps its `lastTransitionTime` while the status stays the
/// same: upstream's `UpdatePodCondition` for the pod, apimachinery's
/// `SetStatusCondition` for the budget.
fn set_condition(obj: &mut Value, mut condition: Value) {
    if !obj.get("status").is_some_and(Value::is_object) {
        obj["status"] = json!({});
    }
    let conditions = obj["status"]
        .as_object_mut()
        .map(|s| s.entry("conditions").or_insert_with(|| json!([])));
    let Some(Value::Array(conditions)) = conditions else {
        return;
    };
    let old = conditions
        .iter()
        .position(|c| c["type"] == condition["type"]);
    condition["lastTransitionTime"] = old
        .filter(|&i| conditions[i]["status"] == condition["status"])
        .and_then(|i| conditions[i].get("lastTransitionTime").cloned())
        .unwrap_or_else(|| json!(super::now()));
    match old {
        Some(i) => conditions[i] = condition,
        None => conditions.push(condition),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets_are_ignored_for_pods_that_are_not_running() {
        for phase in ["Pending", "Succeeded", "Failed"] {
            assert!(can_ignore_budget(&json!({"status": {"phase": phase}})));
        }
        assert!(!can_ignore_budget(&json!({"status": {"phase": "Running"}})));
        assert!(!can_ignore_budget(&json!({"status": {}})));
        assert!(can_ignore_budget(&json!({
            "metadata": {"deletionTimestamp": "2025-01-01T00:00:00Z"},
            "status": {"phase": "Running"},
        })));
    }

    #[test]
    fn an_empty_selector_covers_every_pod_and_none_covers_nothing() {
        let pod = json!({"metadata": {"name": "web-1", "labels": {"app": "web"}}});
        let pdb = |selector: Value| json!({"spec": {"selector": selector}});
        assert!(covers(&pdb(json!({"matchLabels": {"app": "web"}})), &pod));
        assert!(!covers(&pdb(json!({"matchLabels": {"app": "db"}})), &pod));
        assert!(covers(&pdb(json!({})), &pod));
        assert!(!covers(&pdb(Value::Null), &pod));
        assert!(!covers(&json!({"spec": {}}), &pod));
    }

    #[test]
    fn refusals_of_a_broken_budget_or_precondition_read_as_upstream() {
        let s = budget_forbidden("web", "pdb disruptions allowed is negative").to_status();
        assert_eq!(
            s["message"],
            "poddisruptionbudget.policy \"web\" is forbidden: pdb disruptions allowed is negative"
        );
        let s = precondition_failed("web-1", "the UID in the precondition (a) does not match the UID in record (b). The object might have been deleted and then recreated".into()).to_status();
        assert_eq!(s["code"], 409);
        assert!(
            s["message"]
                .as_str()
                .unwrap()
                .starts_with("Operation cannot be fulfilled on Pod \"web-1\": the UID")
        );
    }

    #[test]
    fn a_refusal_names_the_budget_and_its_counts() {
        let e = too_many_requests(
            0,
            "The disruption budget web needs 2 healthy pods and has 2 currently",
        );
        let s = e.to_status();
        assert_eq!(s["code"], 429);
        assert_eq!(s["reason"], "TooManyRequests");
        assert_eq!(s["message"], VIOLATES_BUDGET);
        assert_eq!(s["details"]["causes"][0]["reason"], "DisruptionBudget");
        assert!(s["details"].get("retryAfterSeconds").is_none());
        assert_eq!(
            still_processing("web").to_status()["details"]["retryAfterSeconds"],
            10
        );
    }
}
