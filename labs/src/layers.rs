//! The layering rule of [`crate`], checked: a component (controllers,
//! scheduler, kubelet, proxy) may use the machinery, kube-rs and k8s-openapi,
//! but never the API server, the store or another component. The test reads
//! the sources, so a stray `use crate::apiserver::…` fails `cargo test` with
//! the file and the line, not only a reviewer's eye.

use std::path::{Path, PathBuf};

/// The components, by their module under `labs/src`.
const COMPONENTS: &[&str] = &["controllers", "scheduler", "kubelet", "proxy"];
/// What no component may reach: the API server, the store, the wiring and
/// the labs above.
const FORBIDDEN: &[&str] = &["apiserver", "store", "cluster", "lab"];

/// Every `crate::<module>` path in `source` outside comments, with its line.
fn crate_paths(source: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    for (i, line) in source.lines().enumerate() {
        let code = line.split("//").next().unwrap_or_default();
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            let after = &rest[at + "crate::".len()..];
            let module: String = after
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            // `use crate::{a, b}` names several modules at once.
            if module.is_empty() && after.starts_with('{') {
                let group = after[1..].split('}').next().unwrap_or_default();
                for item in group.split(',') {
                    let name = item.trim().split("::").next().unwrap_or_default();
                    found.push((i + 1, name.to_string()));
                }
            } else {
                found.push((i + 1, module));
            }
            rest = after;
        }
    }
    found
}

/// The breaches of the rule in the component `component` whose source is
/// `source`: one readable line each.
fn breaches(component: &str, file: &str, source: &str) -> Vec<String> {
    crate_paths(source)
        .into_iter()
        .filter(|(_, module)| {
            FORBIDDEN.contains(&module.as_str())
                || (COMPONENTS.contains(&module.as_str()) && module != component)
        })
        .map(|(line, module)| {
            format!("{file}:{line}: component `{component}` uses `crate::{module}`")
        })
        .collect()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn components_use_only_the_machinery() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut problems = Vec::new();
    let mut checked = 0;
    for component in COMPONENTS {
        let mut files = Vec::new();
        rust_files(&src.join(component), &mut files);
        for file in files {
            let source = std::fs::read_to_string(&file).expect("read a source file");
            let shown = file
                .strip_prefix(&src)
                .unwrap_or(&file)
                .display()
                .to_string();
            problems.extend(breaches(component, &shown, &source));
            checked += 1;
        }
    }
    assert!(
        checked > 20,
        "found only {checked} component files under {src:?}"
    );
    assert!(
        problems.is_empty(),
        "components talk only through the API:\n{}",
        problems.join("\n")
    );
}

#[test]
fn a_component_importing_the_api_server_is_caught() {
    let source = "use crate::machinery::informer::Informer;\n\
                  use crate::apiserver::selector::LabelSelector; // the bad one\n\
                  use crate::{kubelet::Clock, store::Store};\n\
                  // crate::apiserver in a comment is fine\n\
                  fn f() { crate::scheduler::schedule_one::run(); }\n";
    let found = breaches("controllers", "controllers/x.rs", source);
    assert_eq!(
        found,
        [
            "controllers/x.rs:2: component `controllers` uses `crate::apiserver`",
            "controllers/x.rs:3: component `controllers` uses `crate::kubelet`",
            "controllers/x.rs:3: component `controllers` uses `crate::store`",
            "controllers/x.rs:5: component `controllers` uses `crate::scheduler`",
        ]
    );
    assert!(breaches("kubelet", "kubelet/x.rs", "use crate::kubelet::Clock;").is_empty());
}
