//! Finding the command-line tools the kind and GKE targets call (`kind`,
//! `gcloud`, `gke-gcloud-auth-plugin`), the way a shell does: an explicit
//! path first, then each directory of `PATH`.
//!
//! The search path is a parameter rather than read from the environment
//! inside, so that a test can put a recorded stand-in first without
//! changing the test process's own `PATH`.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// Where to look for programs: the `PATH` value, and explicit overrides.
#[derive(Clone, Debug, Default)]
pub struct Tools {
    /// The `PATH` to search (the process's own when built with
    /// [`Tools::from_env`]).
    pub path: Option<OsString>,
    /// `--gcloud PATH` or `WORKBOOK_GCLOUD`.
    pub gcloud: Option<PathBuf>,
    /// `--kind PATH` or `WORKBOOK_KIND`.
    pub kind: Option<PathBuf>,
}

impl Tools {
    /// The process's `PATH`, `WORKBOOK_GCLOUD` and `WORKBOOK_KIND`.
    pub fn from_env() -> Tools {
        Tools {
            path: std::env::var_os("PATH"),
            gcloud: std::env::var_os("WORKBOOK_GCLOUD").map(PathBuf::from),
            kind: std::env::var_os("WORKBOOK_KIND").map(PathBuf::from),
        }
    }

    /// `name` as the shell would run it: a name with a `/` as it is (if it
    /// exists), otherwise the first executable file called `name` in a
    /// directory of the search path.
    pub fn find(&self, name: &str) -> Option<PathBuf> {
        if name.contains('/') {
            return is_executable(Path::new(name)).then(|| PathBuf::from(name));
        }
        let path = self.path.as_ref()?;
        std::env::split_paths(path)
            .map(|dir| dir.join(name))
            .find(|candidate| is_executable(candidate))
    }
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_first_executable_on_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        use std::os::unix::fs::PermissionsExt;
        // Not executable in a/: skipped, as a shell skips it.
        std::fs::write(a.join("tool"), "").unwrap();
        std::fs::write(b.join("tool"), "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(b.join("tool"), std::fs::Permissions::from_mode(0o755)).unwrap();
        let tools = Tools {
            path: Some(std::env::join_paths([&a, &b]).unwrap()),
            ..Tools::default()
        };
        assert_eq!(tools.find("tool"), Some(b.join("tool")));
        assert_eq!(tools.find("missing"), None);
        let absolute = b.join("tool").display().to_string();
        assert_eq!(tools.find(&absolute), Some(b.join("tool")));
    }
}
