//! kube-rs (kube 5, k8s-openapi 0.29) against the lab API server, mostly
//! in-process (`ApiServer::client()`), once over loopback HTTP.

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::watcher::{self, Event};
use labs::apiserver::Config;
use labs::store::Store;
use serde_json::json;
use workbook::apiserver::TestServer;

fn deployment(name: &str) -> Deployment {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": "app:v1"}]},
            },
        },
    }))
    .unwrap()
}

fn api_error(e: kube::Error) -> (u16, String) {
    match e {
        kube::Error::Api(s) => (s.code, s.reason),
        other => panic!("expected an API error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn crud_generation_and_subresources() {
    let s = TestServer::start().await;
    let client = s.client();
    let info = client.apiserver_version().await.unwrap();
    assert_eq!((info.major.as_str(), info.minor.as_str()), ("1", "35"));

    let api = Api::<Deployment>::default_namespaced(client.clone());
    assert_eq!(
        api_error(api.get("krs").await.unwrap_err()),
        (404, "NotFound".into())
    );
    assert!(api.get_opt("krs").await.unwrap().is_none());

    let created = api
        .create(&PostParams::default(), &deployment("krs"))
        .await
        .unwrap();
    assert_eq!(created.metadata.generation, Some(1));
    assert!(created.metadata.uid.is_some() && created.metadata.creation_timestamp.is_some());
    let err = api
        .create(&PostParams::default(), &deployment("krs"))
        .await
        .unwrap_err();
    assert_eq!(api_error(err), (409, "AlreadyExists".into()));
    api.create(&PostParams::default(), &deployment("web"))
        .await
        .unwrap();

    let list = api
        .list(&ListParams::default().labels("app=krs"))
        .await
        .unwrap();
    assert_eq!(list.items.len(), 1);
    assert!(
        list.metadata
            .resource_version
            .is_some_and(|rv| !rv.is_empty())
    );
    let list = api
        .list(&ListParams::default().labels("app in (krs,web)"))
        .await
        .unwrap();
    assert_eq!(list.items.len(), 2);
    let list = api
        .list(&ListParams::default().fields("metadata.name=web"))
        .await
        .unwrap();
    assert_eq!(list.items.len(), 1);

    // Optimistic concurrency: a replace based on an old read is refused.
    let stale = created.clone();
    api.patch(
        "krs",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"annotations": {"a": "b"}}})),
    )
    .await
    .unwrap();
    let err = api
        .replace("krs", &PostParams::default(), &stale)
        .await
        .unwrap_err();
    assert_eq!(api_error(err), (409, "Conflict".into()));

    // generation: merge annotation -> 1, strategic image -> 2, SSA -> 3, PUT -> 4.
    assert_eq!(api.get("krs").await.unwrap().metadata.generation, Some(1));
    let smp = json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "app:v2"}]}}}});
    let d = api
        .patch("krs", &PatchParams::default(), &Patch::Strategic(smp))
        .await
        .unwrap();
    assert_eq!(d.metadata.generation, Some(2));
    let mut applied = deployment("krs");
    applied.spec.as_mut().unwrap().replicas = Some(3);
    applied
        .spec
        .as_mut()
        .unwrap()
        .template
        .spec
        .as_mut()
        .unwrap()
        .containers[0]
        .image = Some("app:v2".into());
    let d = api
        .patch(
            "krs",
            &PatchParams::apply("krs-manager").force(),
            &Patch::Apply(&applied),
        )
        .await
        .unwrap();
    assert_eq!(d.metadata.generation, Some(3));
    assert_eq!(
        d.metadata.annotations.as_ref().unwrap()["a"],
        "b",
        "apply keeps fields it does not set"
    );
    let mut d = d;
    d.spec.as_mut().unwrap().replicas = Some(4);
    let d = api
        .replace("krs", &PostParams::default(), &d)
        .await
        .unwrap();
    assert_eq!(d.metadata.generation, Some(4));
    // A no-op write: same resourceVersion, no new revision.
    let rv = d.metadata.resource_version.clone();
    let same = api
        .replace("krs", &PostParams::default(), &d)
        .await
        .unwrap();
    assert_eq!(same.metadata.resource_version, rv);

    // status: only status changes, generation stays.
    let st = api
        .patch_status(
            "krs",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 99}, "status": {"replicas": 2, "observedGeneration": 4}})),
        )
        .await
        .unwrap();
    assert_eq!(st.spec.as_ref().unwrap().replicas, Some(4));
    assert_eq!(st.status.as_ref().unwrap().replicas, Some(2));
    assert_eq!(st.metadata.generation, Some(4));
    let got = api.get_status("krs").await.unwrap();
    assert_eq!(got.status.unwrap().observed_generation, Some(4));
    // ... and the main resource ignores status.
    let d = api
        .patch(
            "krs",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"replicas": 7}})),
        )
        .await
        .unwrap();
    assert_eq!(d.status.unwrap().replicas, Some(2));

    // scale: an autoscaling/v1 Scale view of spec.replicas.
    let scale = api.get_scale("krs").await.unwrap();
    assert_eq!(scale.spec.unwrap().replicas, Some(4));
    assert_eq!(scale.status.unwrap().selector.as_deref(), Some("app=krs"));
    let scale = api
        .patch_scale(
            "krs",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 6}})),
        )
        .await
        .unwrap();
    assert_eq!(scale.spec.unwrap().replicas, Some(6));
    let d = api.get("krs").await.unwrap();
    assert_eq!(
        (d.spec.unwrap().replicas, d.metadata.generation),
        (Some(6), Some(5))
    );
    let err = api
        .patch_scale(
            "krs",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": -1}})),
        )
        .await
        .unwrap_err();
    assert_eq!(api_error(err), (422, "Invalid".into()));

    // A resourceVersion inside a patch is a precondition.
    let err = api
        .patch(
            "krs",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"resourceVersion": "1", "labels": {"x": "y"}}})),
        )
        .await
        .unwrap_err();
    assert_eq!(api_error(err), (409, "Conflict".into()));

    // Server-side apply creates what is missing (201), then updates (200).
    let created = api
        .patch(
            "krs-ssa",
            &PatchParams::apply("krs-manager"),
            &Patch::Apply(deployment("krs-ssa")),
        )
        .await
        .unwrap();
    assert_eq!(created.metadata.generation, Some(1));
    let err = api
        .patch(
            "krs-ssa",
            &PatchParams::default(),
            &Patch::Apply(deployment("krs-ssa")),
        )
        .await
        .unwrap_err();
    assert_eq!(
        api_error(err),
        (422, "Invalid".into()),
        "apply needs a field manager"
    );

    // Delete answers with the object.
    let gone = api
        .delete("krs-ssa", &DeleteParams::default())
        .await
        .unwrap();
    assert!(
        gone.left()
            .is_some_and(|d| d.metadata.name.as_deref() == Some("krs-ssa"))
    );
    assert!(api.get_opt("krs-ssa").await.unwrap().is_none());
    let err = api
        .delete("krs-ssa", &DeleteParams::default())
        .await
        .unwrap_err();
    assert_eq!(api_error(err), (404, "NotFound".into()));

    // Invalid objects: 422 with field paths.
    let mut bad = deployment("bad");
    bad.spec.as_mut().unwrap().replicas = Some(-1);
    match api.create(&PostParams::default(), &bad).await.unwrap_err() {
        kube::Error::Api(st) => {
            assert_eq!(st.code, 422);
            assert!(
                st.message.contains("spec.replicas: Invalid value: -1"),
                "{}",
                st.message
            );
        }
        other => panic!("{other:?}"),
    }
    // Namespaces must exist.
    let elsewhere = Api::<Deployment>::namespaced(client.clone(), "nowhere");
    let err = elsewhere
        .create(&PostParams::default(), &deployment("x"))
        .await
        .unwrap_err();
    assert_eq!(api_error(err), (404, "NotFound".into()));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn finalizers_hold_deletion() {
    let s = TestServer::start().await;
    let cms = Api::<ConfigMap>::default_namespaced(s.client());
    let cm: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "held", "finalizers": ["labs/hold"]}}))
            .unwrap();
    cms.create(&PostParams::default(), &cm).await.unwrap();
    let marked = cms
        .delete("held", &DeleteParams::default())
        .await
        .unwrap()
        .left()
        .unwrap();
    assert!(marked.metadata.deletion_timestamp.is_some());
    assert!(
        cms.get_opt("held").await.unwrap().is_some(),
        "held by its finalizer"
    );
    cms.patch(
        "held",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    assert!(
        cms.get_opt("held").await.unwrap().is_none(),
        "gone with its last finalizer"
    );
    s.stop().await;
}

/// What a watcher event says, in short, for comparing sequences.
fn describe(ev: &Event<Deployment>) -> String {
    let name = |d: &Deployment| d.metadata.name.clone().unwrap_or_default();
    match ev {
        Event::Init => "Init".into(),
        Event::InitApply(d) => format!("InitApply {}", name(d)),
        Event::InitDone => "InitDone".into(),
        Event::Apply(d) => format!(
            "Apply {} {}",
            name(d),
            d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0)
        ),
        Event::Delete(d) => format!("Delete {}", name(d)),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn watcher_sees_every_change_in_order() {
    let s = TestServer::start().await;
    // Over HTTP this time: the chunked stream through a real socket.
    let api = Api::<Deployment>::default_namespaced(s.http_client());
    api.create(&PostParams::default(), &deployment("a"))
        .await
        .unwrap();
    let mut events = watcher::watcher(api.clone(), watcher::Config::default()).boxed();
    let mut seen = Vec::new();
    let mut next = async || {
        let ev = tokio::time::timeout(Duration::from_secs(10), events.try_next()).await;
        describe(
            &ev.expect("an event in time")
                .expect("no watcher error")
                .expect("stream open"),
        )
    };
    for _ in 0..3 {
        seen.push(next().await);
    }
    assert_eq!(seen, ["Init", "InitApply a", "InitDone"]);
    let mut expected = Vec::new();
    // (From 2: replicas is already 1, and a no-op write makes no event.)
    for i in 2..=20 {
        api.patch(
            "a",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": i}})),
        )
        .await
        .unwrap();
        expected.push(format!("Apply a {i}"));
    }
    api.create(&PostParams::default(), &deployment("b"))
        .await
        .unwrap();
    expected.push("Apply b 1".into());
    api.delete("a", &DeleteParams::default()).await.unwrap();
    expected.push("Delete a".into());
    let mut got = Vec::new();
    for _ in 0..expected.len() {
        got.push(next().await);
    }
    assert_eq!(got, expected);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn watcher_streaming_list_waits_for_the_initial_events_end_bookmark() {
    let s = TestServer::start().await;
    let api = Api::<Deployment>::default_namespaced(s.client());
    api.create(&PostParams::default(), &deployment("a"))
        .await
        .unwrap();
    api.create(&PostParams::default(), &deployment("b"))
        .await
        .unwrap();
    let events = watcher::watcher(api.clone(), watcher::Config::default().streaming_lists());
    let first: Vec<String> = tokio::time::timeout(
        Duration::from_secs(10),
        events.take(4).map(|e| describe(&e.unwrap())).collect(),
    )
    .await
    .unwrap();
    assert_eq!(first, ["Init", "InitApply a", "InitApply b", "InitDone"]);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn watcher_relists_after_410() {
    // A tiny history window: a watcher that falls behind by more than 8
    // events is told 410 Expired and must list again.
    let s = TestServer::start_with(Store::with_history(8), Config::default()).await;
    let api = Api::<Deployment>::default_namespaced(s.client());
    let cms = Api::<ConfigMap>::default_namespaced(s.client());
    api.create(&PostParams::default(), &deployment("a"))
        .await
        .unwrap();
    // Each watch ends after 1 s; the watcher then re-watches from the last
    // revision it saw.
    let mut events = watcher::watcher(api.clone(), watcher::Config::default().timeout(1)).boxed();
    let mut log = Vec::new();
    for _ in 0..3 {
        log.push(describe(&events.try_next().await.unwrap().unwrap()));
    }
    assert_eq!(log, ["Init", "InitApply a", "InitDone"]);
    // Meanwhile many writes elsewhere push the watcher's revision out of
    // the history window.
    for i in 0..20 {
        let cm: ConfigMap =
            serde_json::from_value(json!({"metadata": {"name": format!("cm-{i}")}})).unwrap();
        cms.create(&PostParams::default(), &cm).await.unwrap();
    }
    let mut saw_410 = false;
    let mut after = Vec::new();
    while after.len() < 3 {
        match tokio::time::timeout(Duration::from_secs(10), events.next())
            .await
            .unwrap()
            .unwrap()
        {
            Err(watcher::Error::WatchError(status)) => {
                assert_eq!(status.code, 410);
                saw_410 = true;
            }
            Err(other) => panic!("unexpected watcher error {other:?}"),
            Ok(ev) => after.push(describe(&ev)),
        }
    }
    assert!(saw_410, "the re-watch was told 410 Expired");
    assert_eq!(
        after,
        ["Init", "InitApply a", "InitDone"],
        "and the watcher listed again"
    );
    s.stop().await;
}

/// The watch wire format, read raw: BOOKMARKs carry kind and apiVersion,
/// `timeoutSeconds` ends the stream, and a too-old resourceVersion is an
/// ERROR event with code 410 inside an HTTP 200.
#[tokio::test(flavor = "multi_thread")]
async fn raw_watch_bookmarks_timeout_and_expired() {
    let config = Config {
        bookmark_interval: Duration::from_millis(200),
        ..Config::default()
    };
    let s = TestServer::start_with(Store::with_history(4), config).await;
    let path = "/apis/apps/v1/namespaces/default/deployments";
    let lines = |body: &[u8]| -> Vec<serde_json::Value> {
        body.split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l).unwrap())
            .collect()
    };
    let rv = s.api.store().revision();
    let watch =
        format!("{path}?watch=true&allowWatchBookmarks=true&timeoutSeconds=1&resourceVersion={rv}");
    let started = std::time::Instant::now();
    let (code, headers, body) = workbook::apiserver::raw(&s.api, "GET", &watch, &[], "").await;
    assert_eq!(code, 200);
    assert_eq!(headers["content-type"], "application/json");
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "timeoutSeconds kept the stream open"
    );
    let events = lines(&body);
    assert!(!events.is_empty());
    for ev in &events {
        assert_eq!(ev["type"], "BOOKMARK");
        assert_eq!(ev["object"]["kind"], "Deployment");
        assert_eq!(ev["object"]["apiVersion"], "apps/v1");
        assert_eq!(ev["object"]["metadata"]["resourceVersion"], rv.to_string());
    }

    // Push revision 1 out of the history window, then watch from it.
    let cms = Api::<ConfigMap>::default_namespaced(s.client());
    for i in 0..10 {
        let cm: ConfigMap =
            serde_json::from_value(json!({"metadata": {"name": format!("cm-{i}")}})).unwrap();
        cms.create(&PostParams::default(), &cm).await.unwrap();
    }
    let (code, _, body) = workbook::apiserver::raw(
        &s.api,
        "GET",
        &format!("{path}?watch=1&resourceVersion=1"),
        &[],
        "",
    )
    .await;
    assert_eq!(code, 200, "never an HTTP 410 on a watch");
    let events = lines(&body);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["type"], "ERROR");
    assert_eq!(events[0]["object"]["code"], 410);
    assert_eq!(events[0]["object"]["reason"], "Expired");
    s.stop().await;
}
