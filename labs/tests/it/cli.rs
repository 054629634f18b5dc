//! The `labs` binary's bad input: one readable line and a failing exit
//! code, never a backtrace.

use std::process::Command;

fn labs(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_labs"))
        .args(args)
        .output()
        .expect("labs runs");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out.status.code().unwrap_or(-1), stderr)
}

#[test]
fn controller_manager_refuses_a_component_that_is_not_a_controller() {
    let (code, stderr) = labs(&["controller-manager", "--without", "scheduler"]);
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(
        stderr.trim(),
        "labs: --without scheduler: not a controller of the controller manager \
         (replicaset, deployment, endpointslice, garbage-collector, disruption, serviceaccount)"
    );
}

#[test]
fn the_service_lab_refuses_the_simulated_runtime() {
    let (code, stderr) = labs(&["service", "--runtime", "simulated"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr
            .trim()
            .ends_with("the Service lab needs real processes: --runtime process or docker"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}
