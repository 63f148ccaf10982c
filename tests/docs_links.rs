//! The documentation's links lead somewhere: every relative link of README.md,
//! CONTRIBUTING.md and docs/*.md names a file that exists and, with `#anchor`, a heading of
//! that file (as GitHub makes anchors). Content moves between pages; links must follow it.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn pages() -> Vec<PathBuf> {
    let mut pages = vec![root().join("README.md"), root().join("CONTRIBUTING.md")];
    for e in std::fs::read_dir(root().join("docs")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "md") {
            pages.push(p);
        }
    }
    pages.sort();
    pages
}

/// GitHub's anchor of a heading: lower case, spaces to `-`, other punctuation dropped.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

/// The anchors of a page's headings (outside code blocks).
fn anchors(page: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut code = false;
    for line in std::fs::read_to_string(page).unwrap().lines() {
        if line.starts_with("```") {
            code = !code;
        } else if !code && line.starts_with('#') {
            out.insert(anchor(line.trim_start_matches('#')));
        }
    }
    out
}

/// The targets of a page's Markdown links `[text](target)`.
fn links(text: &str) -> Vec<&str> {
    text.match_indices("](")
        .filter_map(|(i, _)| {
            let rest = &text[i + 2..];
            let end = rest.find([')', ' ', '\n'])?;
            (rest.as_bytes().get(end) == Some(&b')')).then(|| &rest[..end])
        })
        .collect()
}

#[test]
fn every_relative_link_of_the_docs_names_a_file_and_heading_that_exist() {
    let mut wrong = Vec::new();
    let mut checked = 0;
    for page in pages() {
        let text = std::fs::read_to_string(&page).unwrap();
        let name = page.strip_prefix(root()).unwrap().display().to_string();
        for link in links(&text) {
            if link.contains("://") || link.starts_with("mailto:") {
                continue;
            }
            checked += 1;
            let (file, fragment) = link.split_once('#').unwrap_or((link, ""));
            let target = if file.is_empty() {
                page.clone()
            } else {
                page.parent().unwrap().join(file)
            };
            if !target.exists() {
                wrong.push(format!(
                    "{name}: {link}: {} does not exist",
                    target.display()
                ));
            } else if !fragment.is_empty() && !anchors(&target).contains(fragment) {
                wrong.push(format!("{name}: {link}: no heading with that anchor"));
            }
        }
    }
    assert!(checked > 20, "only {checked} links found");
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn anchors_are_made_as_github_makes_them() {
    assert_eq!(
        anchor(" Objects that exist: `--on-conflict skip` or `update`"),
        "objects-that-exist---on-conflict-skip-or-update"
    );
    assert_eq!(anchor("Guided upgrade 1.3 → 1.4"), "guided-upgrade-13--14");
}
