//! The book builds, and everything in it resolves.
//!
//! The book is built through the `mdbook-driver` library (the library form
//! of mdBook 0.5) with the same preprocessors `mdbook build book` runs: the
//! built-in `links` (for `{{#include}}`) and `index`, and `mdbook-mermaid`
//! registered in-process under the name `book.toml` gives it, so no mdBook
//! binaries need to be installed for the tests. Then the built HTML is
//! checked the way a reader would trip over it: every internal link and
//! every anchor must lead somewhere, and no `{{#include}}` may be left
//! unexpanded.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use mdbook_driver::MDBook;
use workbook::book_dir;

/// Builds the book once per test binary into a temporary directory (never
/// into `book/book`, so tests do not race a reader's `mdbook serve`).
fn built_book() -> &'static Path {
    static OUT: OnceLock<PathBuf> = OnceLock::new();
    OUT.get_or_init(|| {
        let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("book");
        let _ = fs::remove_dir_all(&out);
        let mut book = MDBook::load(book_dir()).expect("book.toml and SUMMARY.md load");
        book.config.build.build_dir = out.clone();
        book.with_preprocessor(mdbook_mermaid::Mermaid);
        book.build().expect("the book builds");
        out
    })
}

/// Every `*.html` page of the built book, relative path → contents.
fn pages() -> BTreeMap<PathBuf, String> {
    fn walk(dir: &Path, root: &Path, out: &mut BTreeMap<PathBuf, String>) {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, root, out);
            } else if path.extension().is_some_and(|e| e == "html") {
                let rel = path.strip_prefix(root).unwrap().to_path_buf();
                out.insert(rel, fs::read_to_string(&path).unwrap());
            }
        }
    }
    let root = built_book();
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

/// The values of every `attr="..."` in `html`.
fn attr_values<'a>(html: &'a str, attr: &str) -> Vec<&'a str> {
    let needle = format!(" {attr}=\"");
    html.match_indices(&needle)
        .filter_map(|(i, _)| {
            let rest = &html[i + needle.len()..];
            rest.find('"').map(|end| &rest[..end])
        })
        .collect()
}

/// The Markdown chapters under `book/src`, relative to it.
fn markdown_files() -> BTreeSet<String> {
    fn walk(dir: &Path, root: &Path, out: &mut BTreeSet<String>) {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, root, out);
            } else if path.extension().is_some_and(|e| e == "md") {
                let rel = path.strip_prefix(root).unwrap();
                out.insert(rel.to_string_lossy().replace('\\', "/"));
            }
        }
    }
    let src = book_dir().join("src");
    let mut out = BTreeSet::new();
    walk(&src, &src, &mut out);
    out.remove("SUMMARY.md");
    out
}

/// `(title, Some(path))` for every entry of SUMMARY.md; drafts have `None`.
fn summary_entries() -> Vec<(String, Option<String>)> {
    let summary = fs::read_to_string(book_dir().join("src/SUMMARY.md")).unwrap();
    summary.lines().filter_map(summary_entry).collect()
}

/// Parses one `- [Title](path.md)` line (`[Title]()` is a draft).
fn summary_entry(line: &str) -> Option<(String, Option<String>)> {
    let line = line.trim_start();
    let line = line.strip_prefix("- ").unwrap_or(line);
    let rest = line.strip_prefix('[')?;
    let (title, rest) = rest.split_once("](")?;
    let (target, _) = rest.split_once(')')?;
    Some((
        title.to_string(),
        (!target.is_empty()).then(|| target.to_string()),
    ))
}

#[test]
fn summary_lists_every_chapter_and_nothing_missing() {
    let listed: BTreeSet<String> = summary_entries()
        .into_iter()
        .filter_map(|(_, p)| p)
        .collect();
    let on_disk = markdown_files();
    let unlisted: Vec<_> = on_disk.difference(&listed).collect();
    let missing: Vec<_> = listed.difference(&on_disk).collect();
    assert!(
        unlisted.is_empty(),
        "chapters not in SUMMARY.md: {unlisted:?}"
    );
    assert!(
        missing.is_empty(),
        "SUMMARY.md lists missing files: {missing:?}"
    );
}

#[test]
fn table_of_contents() {
    // Drafts (chapters not written yet) are listed as `[Title]()`: the
    // snapshot shows the whole planned structure and which parts exist.
    let summary = fs::read_to_string(book_dir().join("src/SUMMARY.md")).unwrap();
    let toc: String = summary
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            if let Some(part) = l.strip_prefix("# ") {
                format!("## {part}\n")
            } else {
                match summary_entry(l) {
                    Some((title, Some(path))) => format!("{title}  ->  {path}\n"),
                    Some((title, None)) => format!("{title}  (draft)\n"),
                    None => String::new(),
                }
            }
        })
        .collect();
    insta::assert_snapshot!(toc);
}

#[test]
fn every_internal_link_and_anchor_resolves() {
    let pages = pages();
    let root = built_book();
    let mut broken = Vec::new();
    for (page, html) in &pages {
        let dir = page.parent().unwrap_or(Path::new(""));
        for link in attr_values(html, "href")
            .into_iter()
            .chain(attr_values(html, "src"))
        {
            if link.contains("://")
                || link.starts_with("mailto:")
                || link.starts_with("javascript:")
            {
                continue;
            }
            let (path, fragment) = match link.split_once('#') {
                Some((p, f)) => (p, Some(f)),
                None => (link, None),
            };
            let target = if path.is_empty() {
                page.clone()
            } else {
                normalize(&dir.join(path))
            };
            if !root.join(&target).exists() {
                broken.push(format!(
                    "{}: {link} (no file {})",
                    page.display(),
                    target.display()
                ));
                continue;
            }
            if let (Some(fragment), Some(target_html)) = (fragment, pages.get(&target))
                && !fragment.is_empty()
                && !target_html.contains(&format!("id=\"{fragment}\""))
            {
                broken.push(format!(
                    "{}: {link} (no anchor #{fragment})",
                    page.display()
                ));
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

/// Resolves `a/../b` without touching the file system.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

#[test]
fn every_include_is_expanded_and_nonempty() {
    // The `links` preprocessor only warns on a missing include file and
    // leaves the text; a missing ANCHOR gives an empty listing. Both must
    // fail here.
    let src = book_dir().join("src");
    let mut problems = Vec::new();
    for chapter in markdown_files() {
        let text = fs::read_to_string(src.join(&chapter)).unwrap();
        for (i, _) in text.match_indices("{{#include ") {
            let end = text[i..].find("}}").expect("closed include") + i;
            let spec = text[i + "{{#include ".len()..end].trim();
            let (file, anchor) = match spec.split_once(':') {
                Some((f, a)) => (f, Some(a)),
                None => (spec, None),
            };
            let dir = src.join(&chapter);
            let path = dir.parent().unwrap().join(file);
            let Ok(code) = fs::read_to_string(&path) else {
                problems.push(format!("{chapter}: {file} does not exist"));
                continue;
            };
            // `file:anchor` names an ANCHOR; `file:5`, `file:5:`, `file:2:9`
            // and `file::9` are line ranges, which need no marker.
            let is_line_range = |a: &str| {
                a.split(':')
                    .all(|n| n.is_empty() || n.parse::<usize>().is_ok())
            };
            if let Some(anchor) = anchor.filter(|a| !is_line_range(a)) {
                let start = format!("ANCHOR: {anchor}");
                let stop = format!("ANCHOR_END: {anchor}");
                if !code.contains(&start) || !code.contains(&stop) {
                    problems.push(format!("{chapter}: {file} has no anchor {anchor}"));
                }
            }
        }
    }
    for (page, html) in pages() {
        if html.contains("{{#include") {
            problems.push(format!("{}: unexpanded {{{{#include}}}}", page.display()));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn mermaid_diagrams_are_rendered_by_the_preprocessor() {
    let pages = pages();
    let overview = pages
        .get(Path::new("kubernetes-overview.html"))
        .expect("the Kubernetes overview chapter is built");
    assert!(
        overview.contains("<pre class=\"mermaid\">"),
        "mermaid blocks become <pre class=\"mermaid\">"
    );
    assert!(
        !overview.contains("language-mermaid"),
        "no mermaid block left as plain code"
    );
    // mdBook copies `additional-js` under content-hashed names
    // (mermaid-<hash>.min.js); the page must load both scripts, and the link
    // check above proves the files exist.
    let scripts = attr_values(overview, "src");
    assert!(
        scripts
            .iter()
            .any(|s| s.starts_with("mermaid") && s.ends_with(".min.js")),
        "{scripts:?}"
    );
    assert!(
        scripts.iter().any(|s| s.starts_with("mermaid-init")),
        "{scripts:?}"
    );
}

#[test]
fn admonitions_are_mdbook_builtin_not_admonish() {
    for chapter in markdown_files() {
        let text = fs::read_to_string(book_dir().join("src").join(&chapter)).unwrap();
        assert!(
            !text.contains("```admonish"),
            "{chapter} uses mdbook-admonish syntax"
        );
    }
}

/// A chapter that shows part of a lab's snapshot by line range
/// (`{{#include …snap:A:B}}`) must show whole steps: the range starts at a
/// step's `== N.` header (or the lab's title line) and ends where the step
/// ends (a blank line or the end of the file). When the lab's output gains
/// or loses lines, this fails instead of the book quietly showing the wrong
/// part.
#[test]
fn snapshot_line_ranges_show_whole_steps() {
    let src = book_dir().join("src");
    let mut checked = 0;
    for name in markdown_files() {
        let chapter = fs::read_to_string(src.join(&name)).unwrap();
        for include in chapter.split("{{#include ").skip(1) {
            let spec = include.split("}}").next().unwrap_or_default();
            let Some((path, range)) = spec.split_once(".snap:") else {
                continue;
            };
            let (start, end) = range.split_once(':').unwrap_or((range, ""));
            let start: usize = start.parse().expect("a line number");
            let snapshot =
                fs::read_to_string(src.join(format!("{path}.snap"))).expect("the snapshot exists");
            let lines: Vec<&str> = snapshot.lines().collect();
            let first = lines.get(start - 1).copied().unwrap_or_default();
            assert!(
                first.starts_with("== ") || (start == 5 && !first.is_empty()),
                "{name}: {spec} starts at {first:?}, not at a step's `== N.` header"
            );
            if let Ok(end) = end.parse::<usize>() {
                let after = lines.get(end).copied().unwrap_or_default();
                assert!(
                    after.trim().is_empty(),
                    "{name}: {spec} ends inside a step (the next line is {after:?})"
                );
            }
            checked += 1;
        }
    }
    assert!(checked > 0, "no snapshot line ranges found in the book");
}

/// What a `labs` or `demo` command prints is never typed into a chapter: the
/// ```` ```text ```` block after a `cargo run -p labs|demo -- …` command must
/// be an `{{#include}}` of a file a test writes or checks
/// (`book/src/generated/`, or an insta snapshot). A hand-pasted block would
/// drift the first time a component changed.
#[test]
fn lab_output_in_the_book_is_included_from_checked_files() {
    let mut pasted = Vec::new();
    for package in ["labs", "demo"] {
        for command in labs::lab::book::commands(package) {
            let Some(output) = &command.output else {
                continue;
            };
            let included = output.lines().all(|l| {
                let l = l.trim();
                let target = l
                    .strip_prefix("{{#include ")
                    .and_then(|t| t.strip_suffix("}}"));
                l.is_empty()
                    || target.is_some_and(|t| t.starts_with("generated/") || t.contains(".snap"))
            });
            if !included {
                pasted.push(format!(
                    "{}: the output of `cargo run -p {package} -- {}` is pasted",
                    command.place,
                    command.args.join(" ")
                ));
            }
        }
    }
    assert!(
        pasted.is_empty(),
        "include it from book/src/generated/ (written by a test) instead:\n{}",
        pasted.join("\n")
    );
}

/// Every generated file is shown somewhere, and every one a chapter includes
/// exists: a renamed output cannot leave a stale copy behind.
#[test]
fn every_generated_file_is_included() {
    let generated = book_dir().join("src/generated");
    let chapters: String = markdown_files()
        .iter()
        .map(|f| fs::read_to_string(book_dir().join("src").join(f)).unwrap())
        .collect();
    let mut unused = Vec::new();
    for entry in fs::read_dir(&generated).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().to_string();
        if !chapters.contains(&format!("generated/{name}")) {
            unused.push(name);
        }
    }
    assert!(
        unused.is_empty(),
        "generated files no chapter includes: {unused:?}"
    );
}

/// The test above catches output pasted right after its command; this one
/// catches output retyped anywhere else (a chapter quoting "step 3 of
/// `labs scheduler`" in prose, say): no hand-written ```` ```text ```` block
/// may repeat three consecutive lines of what a lab prints, as recorded in
/// its insta snapshots (`labs/src/lab/tests/snapshots/`) or in
/// `book/src/generated/*.txt`. Whitespace is collapsed (an excerpt is often
/// unindented), and only windows with one line of 30 characters or more
/// count, so that short lines many outputs share (`metadata:`, `app: web`)
/// do not.
#[test]
fn no_chapter_retypes_lab_output() {
    fn norm(l: &str) -> String {
        l.split_whitespace().collect::<Vec<_>>().join(" ")
    }
    fn windows(text: &str) -> Vec<String> {
        let lines: Vec<String> = text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(norm)
            .collect();
        lines
            .windows(3)
            .filter(|w| w.iter().any(|l| l.chars().count() >= 30))
            .map(|w| w.join("\n"))
            .collect()
    }
    let mut recorded = BTreeSet::new();
    let snapshots = book_dir().join("../labs/src/lab/tests/snapshots");
    let generated = book_dir().join("src/generated");
    for dir in [&snapshots, &generated] {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "snap" || e == "txt") {
                recorded.extend(windows(&fs::read_to_string(&path).unwrap()));
            }
        }
    }
    assert!(recorded.len() > 100, "the recorded outputs were found");

    let mut retyped = Vec::new();
    for chapter in markdown_files() {
        let text = fs::read_to_string(book_dir().join("src").join(&chapter)).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let mut i = 0;
        while i < lines.len() {
            if !lines[i].trim_start().starts_with("```") {
                i += 1;
                continue;
            }
            let end = i
                + 1
                + lines[i + 1..]
                    .iter()
                    .position(|l| l.trim_start().starts_with("```"))
                    .unwrap_or(lines.len() - i - 1);
            if lines[i].trim() == "```text" {
                let body = lines[i + 1..end.min(lines.len())].join("\n");
                if let Some(w) = windows(&body).iter().find(|w| recorded.contains(*w)) {
                    retyped.push(format!("{chapter}:{}: {:?}", i + 1, w));
                }
            }
            i = end + 1;
        }
    }
    assert!(
        retyped.is_empty(),
        "lab output typed into a chapter; include it from book/src/generated/ (cut by the lab's test) instead:\n{}",
        retyped.join("\n")
    );
}
