//! The task timeline page (`/tasks`), rendered by a real headless Chromium (Debian's `chromium`,
//! installed by `scripts/test.sh`) after the main example's workload: one bar per attempt, the
//! failed attempts marked with their error, and a screenshot under `target/timeline/` for a
//! human look.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::examples::MainExample;
use support::http_get;
use support::prometheus::TempDir;

const CHROMIUM: &str = "/usr/bin/chromium";

/// Runs Chromium headless on `url` with a fresh profile and `args`; its standard output.
fn chromium(url: &str, args: &[&str]) -> String {
    assert!(
        Path::new(CHROMIUM).exists(),
        "chromium not found: install the Debian package `chromium` (apt-get install chromium); `bash scripts/test.sh` does this"
    );
    let profile = TempDir::new("tasker-timeline-chromium");
    let output = Command::new(CHROMIUM)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-dev-shm-usage",
        ])
        .arg(format!("--user-data-dir={}", profile.0.display()))
        .args(args)
        .arg(url)
        .output()
        .expect("chromium starts");
    assert!(
        output.status.success(),
        "chromium failed on {url}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("the DOM is UTF-8")
}

/// The DOM Chromium built from `url`, after it loaded.
fn dom(url: &str) -> String {
    chromium(url, &["--dump-dom"])
}

/// The `target/` directory this test binary was built in.
fn target_dir() -> PathBuf {
    // target/<profile>/deps/<test>-<hash>
    let exe = std::env::current_exe().unwrap();
    exe.ancestors().nth(3).unwrap().to_path_buf()
}

fn get_json(example: &MainExample, path: &str) -> Value {
    let response = http_get::get(example.addr, path, &[]);
    assert_eq!(response.status, 200, "{path}: {}", response.body);
    serde_json::from_str(&response.body).unwrap()
}

/// Polls `/tasks.json` (a condition with a deadline) until the tasks named are listed as
/// finished.
fn wait_for_tasks(example: &MainExample, ids: &[&str]) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let list = get_json(example, "/tasks.json");
        let finished = |id: &str| {
            list["tasks"].as_array().unwrap().iter().any(|t| {
                t["task_id"] == id && (t["status"] == "completed" || t["status"] == "failed")
            })
        };
        if ids.iter().all(|id| finished(id)) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "tasks {ids:?} never listed: {list}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The elements in `dom` whose opening tag starts with `prefix`, as the tag's text.
fn tags<'a>(dom: &'a str, prefix: &str) -> Vec<&'a str> {
    dom.match_indices(prefix)
        .map(|(i, _)| &dom[i..i + dom[i..].find('>').unwrap()])
        .collect()
}

fn attempts_in(timeline: &Value) -> Vec<&Value> {
    timeline["steps"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["attempts"].as_array().unwrap())
        .collect()
}

#[test]
fn chromium_draws_one_bar_per_attempt_and_marks_the_failed_ones() {
    let example = MainExample::serve();
    assert_eq!(
        example.timeline_url,
        format!("http://{}/tasks", example.addr),
        "the example prints the page's URL"
    );
    // order-1001 completes after a retried payment; order-1004 has no cart and fails for good.
    wait_for_tasks(&example, &["order-1001", "order-1004"]);

    for (task, status) in [("order-1001", "completed"), ("order-1004", "failed")] {
        let timeline = get_json(&example, &format!("/tasks/{task}.json"));
        assert_eq!(timeline["status"], status, "{timeline}");
        let attempts = attempts_in(&timeline);
        let failed: Vec<&&Value> = attempts.iter().filter(|a| a["status"] == "error").collect();
        assert_eq!(timeline["attempts"], attempts.len(), "{timeline}");
        assert_eq!(timeline["failed_attempts"], failed.len(), "{timeline}");
        assert!(
            !failed.is_empty(),
            "{task} has a failed attempt: {timeline}"
        );

        let url = format!("{}/{task}", example.timeline_url);
        let page = dom(&url);
        let bars = tags(&page, "<details class=\"bar ");
        assert_eq!(
            bars.len(),
            attempts.len(),
            "one bar per attempt on {url}:\n{page}"
        );
        let failed_bars: Vec<&&str> = bars.iter().filter(|b| b.contains("bar failed")).collect();
        assert_eq!(failed_bars.len(), failed.len(), "{page}");
        for attempt in &failed {
            let class = attempt["error_class"].as_str().unwrap();
            let message = attempt["error_message"].as_str().unwrap();
            assert!(!class.is_empty() && !message.is_empty(), "{attempt}");
            assert!(
                page.contains(&format!(
                    "<span class=\"error-class\">{class}</span>: <span class=\"error-message\">{message}</span>"
                )),
                "the failed attempt shows {class}: {message}:\n{page}"
            );
        }
        // Each bar lies on the shared axis.
        for bar in &bars {
            let style = bar.split("style=\"").nth(1).unwrap();
            let number = |key: &str| -> f64 {
                let rest = style.split(key).nth(1).unwrap();
                rest[..rest.find('%').unwrap()].parse().unwrap()
            };
            let (left, width) = (number("left:"), number("width:"));
            assert!(
                (0.0..=100.0).contains(&left) && left + width <= 100.001,
                "{bar}"
            );
        }
    }

    // order-1001's retries are grouped under their step: process_payment holds both attempts,
    // the first failed by its timeout.
    let timeline = get_json(&example, "/tasks/order-1001.json");
    let payment = timeline["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step_name"] == "process_payment")
        .unwrap();
    let statuses: Vec<&Value> = payment["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| &a["status"])
        .collect();
    assert_eq!(statuses, ["error", "ok"], "{payment}");
    assert_eq!(timeline["steps"].as_array().unwrap().len(), 5, "{timeline}");

    // The list page: a row and a waterfall per task it lists.
    let list = dom(&example.timeline_url);
    let rows = tags(&list, "<tr class=\"task\"");
    let sections = tags(&list, "<section class=\"timeline\"");
    assert!(!rows.is_empty() && rows.len() == sections.len(), "{list}");
    for task in ["order-1001", "order-1004"] {
        assert!(
            rows.iter()
                .any(|r| r.contains(&format!("data-task-id=\"{task}\""))),
            "{list}"
        );
    }

    let shots = target_dir().join("timeline");
    std::fs::create_dir_all(&shots).unwrap();
    for task in ["order-1001", "order-1004"] {
        let png = shots.join(format!("{task}.png"));
        let _ = std::fs::remove_file(&png);
        chromium(
            &format!("{}/{task}", example.timeline_url),
            &[
                &format!("--screenshot={}", png.display()),
                "--window-size=1280,720",
                "--hide-scrollbars",
            ],
        );
        let bytes = std::fs::read(&png).expect("chromium wrote the screenshot");
        assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "{}", png.display());
    }
}

#[test]
fn unknown_tasks_and_the_json_list_answer_clearly() {
    let example = MainExample::serve();
    wait_for_tasks(&example, &["order-1001"]);
    let missing = http_get::get(example.addr, "/tasks/no-such-task.json", &[]);
    assert_eq!(missing.status, 404);
    assert!(
        missing.body.contains("no task \"no-such-task\""),
        "{}",
        missing.body
    );
    let page = http_get::get(example.addr, "/tasks", &[]);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    // Nothing loads from elsewhere and no script runs.
    assert!(
        page.header("content-security-policy")
            .is_some_and(|p| p.starts_with("default-src 'none'")),
        "{:?}",
        page.headers
    );
    assert!(
        !page.body.contains("<script")
            && !page.body.contains("http://")
            && !page.body.contains("https://")
    );
}
