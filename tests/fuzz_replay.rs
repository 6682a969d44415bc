//! Replays the committed fuzz corpus on stable: every file in `fuzz/corpus/<target>/` goes through
//! the same target function the cargo-fuzz binary runs (`fuzz/src/lib.rs`, compiled here as a
//! module), so an input the fuzzer once found (or a hand-made seed) keeps being checked in CI.
//! The targets cover the parameter filter, W3C trace context and correlation ids, configuration
//! files, Prometheus/OpenMetrics label escaping (also checked by `promtool check metrics`, which
//! needs the Debian package `prometheus`), and raw HTTP requests to the metrics server. Also
//! proves the checks can fail: a mis-escaped exposition and a leaked metric are caught.

#[path = "../fuzz/src/lib.rs"]
mod targets;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Seeds each corpus must hold at least, so an emptied directory cannot pass silently.
const MIN_CORPUS_FILES: usize = 20;

/// `fuzz/corpus/<target>`, or `$TASKER_FUZZ_CORPUS/<target>` to replay a larger corpus (such as
/// a fuzzer's whole working corpus) through the stable build.
fn corpus(target: &str) -> Vec<PathBuf> {
    let root = std::env::var_os("TASKER_FUZZ_CORPUS").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus"),
        PathBuf::from,
    );
    let dir = root.join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    assert!(
        files.len() >= MIN_CORPUS_FILES,
        "{}: {} files, expected at least {MIN_CORPUS_FILES}",
        dir.display(),
        files.len()
    );
    files
}

/// Runs every corpus file of `target` and reports the first failing file by name.
fn replay(target: &str) {
    let run = targets::TARGETS
        .iter()
        .find(|(name, _)| *name == target)
        .map(|(_, run)| *run)
        .unwrap_or_else(|| panic!("no target {target}"));
    let started = Instant::now();
    let files = corpus(target);
    for path in &files {
        let data = std::fs::read(path).expect("readable corpus file");
        if let Err(panic) = std::panic::catch_unwind(|| run(&data)) {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_default();
            panic!("{target}: {} fails: {message}", path.display());
        }
    }
    // A budget far above the measured time of the committed corpus (well under a second per
    // target), so that only a pathological slowdown trips it.
    assert!(
        std::env::var_os("TASKER_FUZZ_CORPUS").is_some()
            || started.elapsed() < Duration::from_secs(30),
        "{target}: {} files took {:?}",
        files.len(),
        started.elapsed()
    );
}

#[test]
fn filter_corpus() {
    replay("filter");
}

#[test]
fn trace_context_corpus() {
    replay("trace_context");
}

#[test]
fn config_corpus() {
    replay("config");
}

#[test]
fn prometheus_labels_corpus() {
    replay("prometheus_labels");
}

#[test]
fn http_request_corpus() {
    replay("http_request");
}

/// Prometheus' own parser, on top of the crate parser the target uses: `promtool check metrics`
/// must find no parse error in the text rendered for any corpus input. (Lint remarks, such as a
/// help text it finds odd, are not parse errors and are allowed.)
#[test]
fn promtool_parses_every_label_corpus_exposition() {
    let promtool = "/usr/bin/promtool";
    assert!(
        Path::new(promtool).exists(),
        "promtool not found: install the Debian package `prometheus` (apt-get install prometheus); `bash scripts/test.sh` does this"
    );
    for path in corpus("prometheus_labels") {
        let text = targets::prometheus_labels_text(&std::fs::read(&path).expect("readable"));
        let mut child = Command::new(promtool)
            .args(["check", "metrics"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("promtool runs");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(text.as_bytes())
            .expect("promtool reads");
        let output = child.wait_with_output().expect("promtool finishes");
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(
            !said.contains("parsing error") && !said.contains("error while linting"),
            "{}: promtool rejects\n{text}\n{said}",
            path.display()
        );
    }
}

fn panics(f: impl FnOnce() + std::panic::UnwindSafe) -> bool {
    std::panic::catch_unwind(f).is_err()
}

#[test]
fn the_checks_catch_broken_escaping_and_leaks() {
    // A correct rendering passes, so the failures below come from the breakage alone.
    let data = b"help\xffa\"b\\c\nd\xff\xff";
    targets::prometheus_labels(data);
    let good = targets::prometheus_labels_text(data);
    assert!(good.contains(r#"a="a\"b\\c\nd""#), "{good}");

    // An unescaped quote: the value is cut short or the line does not parse.
    let recorded = targets::recorded_labels(data);
    let unescaped = good.replace(r#"a\"b"#, r#"a"b"#);
    assert!(panics(|| targets::check_exposition(
        &unescaped, false, &recorded
    )));
    // A dropped backslash escape changes the value.
    let lossy = good.replace(r"b\\c", r"b\c");
    assert!(panics(|| targets::check_exposition(
        &lossy, false, &recorded
    )));

    // The canary in an answer to a request without the token is a leak.
    let answer = format!("HTTP/1.1 200 OK\r\n\r\n{} 1\n", targets::CANARY);
    assert!(panics(|| targets::check_responses(
        b"GET //metrics HTTP/1.1\r\n\r\n",
        answer.as_bytes()
    )));
    let with_token = format!(
        "GET /metrics HTTP/1.1\r\nAuthorization: Bearer {}\r\n\r\n",
        targets::HTTP_TOKEN
    );
    targets::check_responses(with_token.as_bytes(), answer.as_bytes());
    assert!(panics(|| targets::check_responses(
        b"GET / HTTP/1.1\r\n\r\n",
        b"HTTP/1.1 500 Internal Server Error\r\n\r\n"
    )));
}
