//! A real headless Chromium (Debian's `chromium`; scripts/test.sh installs it) that loads a page
//! from a file with networking, sync and updates off, and gives back its DOM or a screenshot.

use std::path::{Path, PathBuf};
use std::process::Command;

pub fn binary() -> PathBuf {
    for name in ["chromium", "chromium-browser", "google-chrome"] {
        if let Ok(out) = Command::new("sh")
            .args(["-c", &format!("command -v {name}")])
            .output()
            && out.status.success()
        {
            return PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        }
    }
    panic!("no chromium on PATH: install Debian's chromium (scripts/test.sh does)");
}

fn run(page: &Path, width: u32, height: u32, what: &[String]) -> std::process::Output {
    let profile = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(binary());
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--hide-scrollbars",
        "--force-device-scale-factor=1",
        "--run-all-compositor-stages-before-draw",
    ])
    .arg(format!("--user-data-dir={}", profile.path().display()))
    .arg(format!("--window-size={width},{height}"))
    .args(what)
    .arg(format!("file://{}", page.display()));
    let out = cmd.output().expect("starting chromium");
    assert!(
        out.status.success(),
        "chromium failed on {}: {}",
        page.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The DOM after the page loaded, as Chromium serializes it.
pub fn dump_dom(page: &Path, width: u32) -> String {
    String::from_utf8(run(page, width, 900, &["--dump-dom".into()]).stdout).unwrap()
}

/// How the page lays out at `width` pixels: Chromium keeps a window at least 500 pixels wide, so
/// the page is put unchanged into an iframe (`srcdoc`) exactly `width` pixels wide, its media
/// queries see that width, and one script of the wrapper (the page itself has none) reports
/// the frame's viewport, the document's width and height, and the scroll boxes inside it that
/// are wider than they are.
pub struct Layout {
    pub viewport: u32,
    pub document_width: u32,
    pub document_height: u32,
    pub overflowing_boxes: u32,
}

/// The page in an iframe `width` × `height` at the wrapper's top left, plus `script`.
fn framed(page: &Path, width: u32, height: u32, script: &str) -> PathBuf {
    let html = std::fs::read_to_string(page).unwrap();
    let srcdoc = html
        .replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    let wrapper = page.with_extension(format!("framed-{width}.html"));
    std::fs::write(
        &wrapper,
        format!(
            "<!DOCTYPE html><html><body style=\"margin:0\"><iframe id=\"f\" style=\"border:0;display:block;width:{width}px;height:{height}px\" srcdoc=\"{srcdoc}\"></iframe>{script}</body></html>"
        ),
    )
    .unwrap();
    wrapper
}

pub fn layout(page: &Path, width: u32) -> Layout {
    let probe = "<script>var f=document.getElementById('f');f.onload=function(){\
        var d=f.contentDocument.documentElement;var n=0;\
        f.contentDocument.querySelectorAll('.scroll').forEach(function(e){if(e.scrollWidth>e.clientWidth+1)n++;});\
        document.documentElement.setAttribute('data-layout',[f.contentWindow.innerWidth,d.scrollWidth,d.scrollHeight,n].join(' '));};</script>";
    let wrapper = framed(page, width, 900, probe);
    let dom = dump_dom(&wrapper, width.max(800));
    let _ = std::fs::remove_file(&wrapper);
    let at = dom
        .find("data-layout=\"")
        .unwrap_or_else(|| panic!("the measuring script did not run: {dom}"));
    let v: Vec<u32> = dom[at + 13..]
        .split('"')
        .next()
        .unwrap()
        .split(' ')
        .map(|n| n.parse().unwrap())
        .collect();
    Layout {
        viewport: v[0],
        document_width: v[1],
        document_height: v[2],
        overflowing_boxes: v[3],
    }
}

/// A PNG of the page laid out `width` pixels wide, `height` high; returns the PNG's width and
/// height.
pub fn screenshot(page: &Path, png: &Path, width: u32, height: u32) -> (u32, u32) {
    let wrapper = framed(page, width, height, "");
    run(
        &wrapper,
        width,
        height,
        &[format!("--screenshot={}", png.display())],
    );
    let _ = std::fs::remove_file(&wrapper);
    let b = std::fs::read(png).unwrap();
    assert_eq!(&b[1..4], b"PNG", "{} is not a PNG", png.display());
    let be = |i: usize| u32::from_be_bytes(b[i..i + 4].try_into().unwrap());
    (be(16), be(20))
}

/// The page printed to PDF (A4/Letter as Chromium's default), as `@media print` lays it out.
pub fn print_pdf(page: &Path, pdf: &Path) -> Vec<u8> {
    run(
        page,
        900,
        900,
        &[
            "--no-pdf-header-footer".into(),
            format!("--print-to-pdf={}", pdf.display()),
        ],
    );
    std::fs::read(pdf).unwrap()
}
