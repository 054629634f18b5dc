//! A stand-in for containerd's `ctr`, for the kind image loader's test
//! (demo/tests/it/kind_load.rs). The test compiles this one file with
//! `rustc` into a static binary (std only, no crates: it builds in
//! seconds), puts it at /usr/local/bin/ctr in a `FROM scratch` image and
//! runs a container of it labelled as a kind node.
//!
//! * `ctr node`: the container's main process; sleeps until killed.
//! * `ctr -n k8s.io images import --digests --snapshotter=overlayfs FILE`:
//!   what the loader runs. It checks the arguments are exactly those, that
//!   FILE is a well-formed tar (every header's checksum) holding a
//!   `manifest.json`, and records the import in
//!   `/var/lib/ctr-standin/imports/<FILE's name>`: the arguments, the
//!   archive's entries and `manifest.json`, for the test to read back and
//!   judge (the repository tag, the config's digest).
//!
//! Anything else exits 2 with one line, as a wrong command line would.

use std::io::Write;

fn fail(message: &str) -> ! {
    eprintln!("ctr: {message}");
    std::process::exit(2)
}

/// An octal number field of a tar header (NUL/space padded).
fn octal(field: &[u8]) -> u64 {
    let text: String = field
        .iter()
        .take_while(|b| **b != 0)
        .map(|b| *b as char)
        .collect();
    u64::from_str_radix(text.trim(), 8).unwrap_or_else(|_| fail("bad octal field in tar header"))
}

/// The entries of a tar archive, (name, data), headers checked.
fn entries(archive: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + 512 <= archive.len() {
        let header = &archive[at..at + 512];
        if header.iter().all(|b| *b == 0) {
            return out;
        }
        let stored = octal(&header[148..156]);
        let sum: u64 = header
            .iter()
            .enumerate()
            .map(|(i, b)| if (148..156).contains(&i) { 32 } else { *b as u64 })
            .sum();
        if sum != stored {
            fail(&format!("tar header at {at}: checksum {stored}, computed {sum}"));
        }
        let name: String = header[..100]
            .iter()
            .take_while(|b| **b != 0)
            .map(|b| *b as char)
            .collect();
        let size = octal(&header[124..136]) as usize;
        let start = at + 512;
        if start + size > archive.len() {
            fail(&format!("tar entry {name}: truncated"));
        }
        out.push((name, archive[start..start + size].to_vec()));
        at = start + size.div_ceil(512) * 512;
    }
    fail("tar archive without its end marker")
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("node") {
        loop {
            std::thread::sleep(std::time::Duration::from_secs(3600));
        }
    }
    let expected = [
        "-n",
        "k8s.io",
        "images",
        "import",
        "--digests",
        "--snapshotter=overlayfs",
    ];
    if args.len() != expected.len() + 1 || args[..expected.len()] != expected {
        fail(&format!("unexpected arguments: {}", args.join(" ")));
    }
    let file = &args[expected.len()];
    let archive = std::fs::read(file).unwrap_or_else(|e| fail(&format!("open {file}: {e}")));
    let entries = entries(&archive);
    let Some((_, manifest)) = entries.iter().find(|(n, _)| n == "manifest.json") else {
        fail(&format!("{file}: no manifest.json: not an image archive"));
    };
    let dir = "/var/lib/ctr-standin/imports";
    std::fs::create_dir_all(dir).unwrap_or_else(|e| fail(&format!("mkdir {dir}: {e}")));
    let base = file.rsplit('/').next().unwrap_or(file);
    let mut record = std::fs::File::create(format!("{dir}/{base}"))
        .unwrap_or_else(|e| fail(&format!("record: {e}")));
    let mut text = format!("args {}\n", args.join(" "));
    for (name, _) in &entries {
        text.push_str(&format!("entry {name}\n"));
    }
    text.push_str("manifest ");
    text.push_str(String::from_utf8_lossy(manifest).trim());
    text.push('\n');
    record
        .write_all(text.as_bytes())
        .unwrap_or_else(|e| fail(&format!("record: {e}")));
    println!("unpacking {file} ({} entries)...done", entries.len());
}
