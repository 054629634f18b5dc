//! What the book shows of the labs, kept true by the tests.
//!
//! The book never shows a lab's output typed by hand: a chapter includes a
//! file from `book/src/generated/`, and the test that runs the lab compares
//! that file with what the lab prints now ([`check_generated`]). Change a
//! component, and the test names the file that must change with it; run the
//! tests with `UPDATE_GENERATED=1` to rewrite the files, then review the diff
//! as you would a snapshot's.
//!
//! The book's commands are checked the other way round: [`commands`] finds
//! every `cargo run -p labs -- …` (or `-p demo`) a chapter shows, so a test
//! can parse each one with the binary's own command line and fail when a
//! subcommand or flag the book names no longer exists.

use std::path::{Path, PathBuf};

/// `book/src`, found from this crate's directory (the workspace's layout).
pub fn book_src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../book/src")
}

/// The book's copy of a generated output, `book/src/generated/<name>`, must
/// equal `text`. With `UPDATE_GENERATED=1` in the environment the file is
/// written instead. Returns an error (for the test to panic with) naming the
/// file, the command to update it, and the first line that differs.
pub fn check_generated(name: &str, text: &str) -> Result<(), String> {
    let path = book_src().join("generated").join(name);
    let current = std::fs::read_to_string(&path).unwrap_or_default();
    if current == text {
        return Ok(());
    }
    if std::env::var_os("UPDATE_GENERATED").is_some() {
        std::fs::create_dir_all(path.parent().expect("generated/ has a parent"))
            .and_then(|()| std::fs::write(&path, text))
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        return Ok(());
    }
    let first_difference = current
        .lines()
        .zip(text.lines())
        .enumerate()
        .find(|(_, (a, b))| a != b)
        .map(|(i, (a, b))| format!("line {}: book has {a:?}, the run printed {b:?}", i + 1))
        .unwrap_or_else(|| "one is a prefix of the other".to_string());
    Err(format!(
        "book/src/generated/{name} is not what the lab prints now ({first_difference}); \
         run the test with UPDATE_GENERATED=1 and review the diff.\nThe run printed:\n{text}"
    ))
}

/// A benchmark's output in the book is one recorded run (release build, the
/// workbook's 2-core machine): its numbers are measurements, not something a
/// test can reproduce. What a test can check is that the recording is still
/// what the bench prints: every line of `book/src/generated/<name>`, with
/// its numbers taken out, must be a line the bench prints now, run small.
/// Lines listing API calls by verb and resource (`POST pods  10000`) are
/// left out of the comparison: which calls appear depends on the size.
pub fn check_recorded_shape(name: &str, run: &str) -> Result<(), String> {
    fn shape(line: &str) -> Option<String> {
        let words: Vec<&str> = line
            .split_whitespace()
            .filter(|w| !w.chars().any(|c| c.is_ascii_digit()))
            .collect();
        let per_call = words
            .first()
            .is_some_and(|w| matches!(*w, "GET" | "POST" | "PUT" | "PATCH" | "DELETE"));
        (!per_call && !words.is_empty()).then(|| words.join(" "))
    }
    let path = book_src().join("generated").join(name);
    let recorded = std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let printed: std::collections::BTreeSet<String> = run.lines().filter_map(shape).collect();
    let missing: Vec<&str> = recorded
        .lines()
        .filter(|l| shape(l).is_some_and(|s| !printed.contains(&s)))
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "book/src/generated/{name} shows lines the bench no longer prints:\n{}\n\
             Re-record it: run the bench (release build) and save its output there.\n\
             The small run printed:\n{run}",
            missing.join("\n")
        ))
    }
}

/// A command the book shows, where it shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BookCommand {
    /// `kubelet.md:301`.
    pub place: String,
    /// The words after `--`, as a shell would split them (the book's
    /// commands use no quoting that matters here).
    pub args: Vec<String>,
    /// When the command is in a code block followed (after blank lines) by a
    /// ```` ```text ```` block, that block's body: what the book says the
    /// command prints.
    pub output: Option<String>,
}

/// Every `cargo run [--release] [-q] -p <package> [-- …]` in the book's
/// chapters, in prose or in code blocks. The command ends at the end of the
/// line, a backtick, a shell operator (`|`, `;`, `&`, `#`, `>`) or a line
/// continuation (`\\`: the book writes its lab commands on one line).
pub fn commands(package: &str) -> Vec<BookCommand> {
    let mut found = Vec::new();
    let mut chapters: Vec<PathBuf> = std::fs::read_dir(book_src())
        .expect("book/src exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    chapters.sort();
    const ENDS: [char; 7] = ['`', '|', ';', '&', '#', '>', '\\'];
    let marker = format!("-p {package}");
    for chapter in chapters {
        let text = std::fs::read_to_string(&chapter).expect("a chapter is UTF-8");
        let name = chapter.file_name().unwrap().to_string_lossy().to_string();
        let lines: Vec<&str> = text.lines().collect();
        for (n, line) in lines.iter().enumerate() {
            let mut rest = *line;
            while let Some(at) = rest.find("cargo run") {
                let after = &rest[at..];
                let Some(m) = after.find(&marker) else { break };
                let tail = &after[m + marker.len()..];
                rest = tail;
                // `-p demo -- --yes`, or `-p demo` alone (the default
                // subcommand): anything else (`-p demo-app`) is not this
                // package.
                let args = if let Some(args) = tail.strip_prefix(" -- ") {
                    args
                } else if tail.trim_start().is_empty() || tail.trim_start().starts_with(ENDS) {
                    ""
                } else {
                    continue;
                };
                // Only flags of cargo itself may sit between `cargo run` and `-p`.
                let between = &after["cargo run".len()..m];
                if between
                    .split_whitespace()
                    .all(|w| matches!(w, "--release" | "-q" | "--quiet"))
                {
                    let end = args.find(ENDS).unwrap_or(args.len());
                    found.push(BookCommand {
                        place: format!("{name}:{}", n + 1),
                        args: args[..end].split_whitespace().map(str::to_string).collect(),
                        output: output_after(&lines, n),
                    });
                }
            }
        }
    }
    found
}

/// The body of the ```` ```text ```` block that follows the code block
/// holding line `n`, if one does (blank lines may sit between the two).
fn output_after(lines: &[&str], n: usize) -> Option<String> {
    let is_fence = |l: &&str| l.trim_start().starts_with("```");
    // The command must be inside a fenced block: an odd number of fences
    // before it.
    if lines[..n].iter().filter(|l| is_fence(l)).count() % 2 == 0 {
        return None;
    }
    let close = n + lines[n..].iter().position(is_fence)?;
    let open = close
        + 1
        + lines[close + 1..]
            .iter()
            .position(|l| !l.trim().is_empty())?;
    if lines[open].trim() != "```text" {
        return None;
    }
    let end = open + 1 + lines[open + 1..].iter().position(is_fence)?;
    Some(
        lines[open + 1..end]
            .iter()
            .map(|l| format!("{l}\n"))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_book_shows_commands_and_they_are_found() {
        let all = commands("labs");
        // The introduction promises this one; if it were not found, the
        // scanner (not the book) would be wrong.
        assert!(
            all.iter()
                .any(|c| c.args.first().map(String::as_str) == Some("cluster")),
            "no `cargo run -p labs -- cluster` found in the book: {all:?}"
        );
        // `cargo run -p demo` alone runs the default subcommand: a command
        // too, whose output a chapter could paste.
        let demo = commands("demo");
        assert!(
            demo.iter()
                .any(|c| c.args.is_empty() && c.place.starts_with("demo.md:")),
            "`cargo run -p demo` (demo.md) not found: {demo:?}"
        );
    }

    #[test]
    fn a_differing_file_is_named_with_its_first_difference() {
        // Not written: UPDATE_GENERATED is not set in the test environment
        // unless someone asks for it, and then this name is never written
        // because the check passes only when the text matches.
        if std::env::var_os("UPDATE_GENERATED").is_some() {
            return;
        }
        let err = check_generated("labs-store.txt", "surely not the store lab\n").unwrap_err();
        assert!(err.contains("book/src/generated/labs-store.txt"), "{err}");
        assert!(err.contains("line 1"), "{err}");
    }
}
