//! The main example runs, exits 0, prints its three sections, and every output line README.md
//! quotes appears in what it really prints (durations aside).

use std::process::Command;

#[path = "support/examples.rs"]
mod examples;

fn example_binary() -> std::path::PathBuf {
    examples::example_binary("order_processing")
}

/// Replaces durations ("117ms", "63.5µs", "1.2s") with `<duration>`.
fn normalise(line: &str) -> String {
    line.split(' ')
        .map(|token| {
            let digits = token.trim_end_matches(|c: char| c.is_alphabetic() || c == 'µ');
            let unit = &token[digits.len()..];
            let is_duration = !digits.is_empty()
                && digits.parse::<f64>().is_ok()
                && matches!(unit, "ns" | "µs" | "ms" | "s");
            if is_duration {
                "<duration>".to_owned()
            } else {
                token.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn the_main_example_prints_what_readme_says() {
    let output = Command::new(example_binary())
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "exit {}: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).unwrap();
    let printed: Vec<String> = stdout.lines().map(normalise).collect();
    for section in [
        "== span tree ==",
        "== events published ==",
        "== metrics (Prometheus text) ==",
    ] {
        assert!(
            printed.iter().any(|l| l == section),
            "section {section} missing:\n{stdout}"
        );
    }

    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    let quoted = readme
        .split("<!-- order_processing output: begin -->")
        .nth(1)
        .and_then(|rest| rest.split("<!-- order_processing output: end -->").next())
        .expect("README quotes the example's output between markers");
    let lines: Vec<&str> = quoted
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with("```"))
        .collect();
    assert!(lines.len() > 10);
    for line in lines {
        assert!(
            printed.iter().any(|p| p == line),
            "README quotes {line:?}, but the example printed:\n{stdout}"
        );
    }
}

#[test]
fn serve_keeps_metrics_and_health_up_until_interrupted() {
    use std::io::{BufRead, BufReader, Read, Write};
    let mut child = Command::new(example_binary())
        .arg("--serve")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    // Waits for the line announcing the server (a condition, not a sleep).
    let serving = lines
        .by_ref()
        .map_while(Result::ok)
        .find(|l| l.starts_with("serving http://"))
        .expect("the example announces its server");
    let addr = serving
        .trim_start_matches("serving http://")
        .split('/')
        .next()
        .unwrap()
        .to_owned();
    let get = |path: &str| {
        let mut s = std::net::TcpStream::connect(&addr).unwrap();
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut body = String::new();
        s.read_to_string(&mut body).unwrap();
        body
    };
    let live = get("/health/live");
    let metrics = get("/metrics");
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(live.starts_with("HTTP/1.1 200"), "{live}");
    assert!(
        metrics
            .contains("tasker_tasks_total{task_name=\"order_processing\",status=\"completed\"} 1"),
        "{metrics}"
    );
}
