//! Running `gcloud`, the one program the GKE target calls for cloud
//! resources (Kubernetes objects go through kube-rs, images through
//! bollard).
//!
//! The program is found as a shell would (`--gcloud PATH`, env
//! `WORKBOOK_GCLOUD`, then `PATH`; see [`crate::tools`]), which is also how
//! the tests replace it with a recorded stand-in: only the cloud calls are
//! faked, everything else in the run is real.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, bail};

use crate::tools::Tools;

/// The `gcloud` program to run.
#[derive(Clone, Debug)]
pub struct Gcloud {
    pub program: PathBuf,
}

/// What a `describe` said.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exists {
    Yes,
    No,
}

impl Gcloud {
    /// The gcloud to use, or one line saying how to get it.
    pub fn find(tools: &Tools) -> anyhow::Result<Gcloud> {
        let wanted = tools
            .gcloud
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "gcloud".to_string());
        match tools.find(&wanted) {
            Some(program) => Ok(Gcloud { program }),
            None if tools.gcloud.is_some() => {
                bail!("no gcloud program at {wanted} (from --gcloud or WORKBOOK_GCLOUD)")
            }
            None => bail!(
                "gcloud is not installed (the GKE target needs the Google Cloud CLI: \
                 https://cloud.google.com/sdk/docs/install), or pass --gcloud PATH"
            ),
        }
    }

    fn output(&self, args: &[String]) -> anyhow::Result<std::process::Output> {
        Command::new(&self.program)
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .with_context(|| format!("cannot run {}", self.program.display()))
    }

    /// Runs `gcloud ARGS…`; its standard output, or its last line of
    /// standard error as the error (gcloud's `ERROR: (gcloud.…) …` line).
    pub fn run(&self, args: &[String]) -> anyhow::Result<String> {
        let output = self.output(args)?;
        if !output.status.success() {
            bail!(
                "gcloud {} failed: {}",
                args.join(" "),
                last_line(&output.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// Runs a `describe` (or `list`) command that answers whether something
    /// exists: exit code 0 is yes; a `NOT_FOUND` (gcloud's 404) is no; any
    /// other failure (not logged in, no permission) is an error.
    pub fn exists(&self, args: &[String]) -> anyhow::Result<Exists> {
        let output = self.output(args)?;
        if output.status.success() {
            return Ok(Exists::Yes);
        }
        let stderr = String::from_utf8_lossy(&output.stderr);
        if stderr.contains("NOT_FOUND") || stderr.contains("404") || stderr.contains("not found") {
            return Ok(Exists::No);
        }
        bail!(
            "gcloud {} failed: {}",
            args.join(" "),
            last_line(&output.stderr)
        );
    }
}

fn last_line(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    text.lines()
        .rfind(|l| !l.trim().is_empty())
        .unwrap_or("(no message)")
        .trim()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_gcloud_is_one_line() {
        let dir = tempfile::tempdir().unwrap();
        let tools = Tools {
            path: Some(dir.path().as_os_str().to_owned()),
            ..Tools::default()
        };
        let err = Gcloud::find(&tools).unwrap_err().to_string();
        assert!(err.starts_with("gcloud is not installed"), "{err}");
        assert!(!err.contains('\n'));
        let tools = Tools {
            gcloud: Some(dir.path().join("nope")),
            ..tools
        };
        let err = Gcloud::find(&tools).unwrap_err().to_string();
        assert!(err.starts_with("no gcloud program at"), "{err}");
    }
}
