//! A real Prometheus server (the Debian package `prometheus`), started by a test on 127.0.0.1
//! and stopped by its pid when dropped, and PromQL queries against it.
// Each test target uses a part.
#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::http_get::get;

/// The path of a Prometheus binary (`prometheus`, `promtool`), failing the test with how to get
/// it when it is missing.
pub fn require(binary: &str) -> String {
    let path = format!("/usr/bin/{binary}");
    assert!(
        Path::new(&path).exists(),
        "{binary} not found: install the Debian package `prometheus` (apt-get install prometheus); `bash scripts/test.sh` does this"
    );
    path
}

/// A directory removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// A fresh directory under the system's temporary one.
    pub fn new(prefix: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("{prefix}-{}-{}", std::process::id(), free_port()));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A port nothing listens on at the moment.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running Prometheus, scraping its targets every second under job `tasker` (keeping the
/// `job` and `instance` labels a target's series carry, as a Pushgateway's do).
pub struct Prometheus {
    child: Child,
    /// Where its HTTP API listens.
    pub addr: SocketAddr,
    _dir: TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prometheus {
    /// Starts Prometheus scraping `targets`' `/metrics` every second and evaluating
    /// `rule_files` every second.
    pub fn start(targets: &[SocketAddr], rule_files: &[PathBuf]) -> Self {
        Self::start_with(targets, rule_files, &[])
    }

    /// [`start`](Self::start), with extra command-line flags
    /// (`--enable-feature=exemplar-storage`).
    pub fn start_with(targets: &[SocketAddr], rule_files: &[PathBuf], flags: &[&str]) -> Self {
        let binary = require("prometheus");
        let dir = TempDir::new("tasker-prom");
        let targets: Vec<String> = targets.iter().map(|t| format!("'{t}'")).collect();
        let rules: String = rule_files
            .iter()
            .map(|r| format!("  - '{}'\n", r.display()))
            .collect();
        let config = format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\nrule_files:\n{rules}scrape_configs:\n  - job_name: tasker\n    honor_labels: true\n    metrics_path: /metrics\n    static_configs:\n      - targets: [{}]\n",
            targets.join(", ")
        );
        let config = if rule_files.is_empty() {
            config.replace("rule_files:\n", "")
        } else {
            config
        };
        std::fs::write(dir.0.join("prometheus.yml"), config).unwrap();
        let port = free_port();
        let child = Command::new(binary)
            .arg(format!(
                "--config.file={}",
                dir.0.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.0.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .args(flags)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus starts");
        Self {
            child,
            addr: ([127, 0, 0, 1], port).into(),
            _dir: dir,
        }
    }
}

/// Runs `GET path` against the server's API, asking again (bounded, 60 s) until `done` accepts
/// the answer's `data`.
pub fn api_until(
    prometheus: &Prometheus,
    path: &str,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = serde_json::Value::Null;
    loop {
        if std::net::TcpStream::connect(prometheus.addr).is_ok() {
            let answer = get(prometheus.addr, path, &[]);
            if answer.status == 200 {
                let body: serde_json::Value = serde_json::from_str(&answer.body).unwrap();
                last = body["data"].clone();
                if done(&last) {
                    return last;
                }
            }
        }
        assert!(
            Instant::now() < deadline,
            "no acceptable answer to {path} within 60 s; last: {last}"
        );
        std::thread::park_timeout(Duration::from_millis(250));
    }
}

/// `s` with everything but unreserved characters percent-encoded.
pub fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Runs an instant PromQL query, asking again (bounded) until it has a result.
pub fn query(prometheus: &Prometheus, promql: &str) -> Vec<serde_json::Value> {
    query_until(prometheus, promql, |result| !result.is_empty())
}

/// Runs an instant PromQL query, asking again (bounded, 60 s) until `done` accepts its result.
pub fn query_until(
    prometheus: &Prometheus,
    promql: &str,
    done: impl Fn(&[serde_json::Value]) -> bool,
) -> Vec<serde_json::Value> {
    let path = format!("/api/v1/query?query={}", url_encode(promql));
    let result = |data: &serde_json::Value| data["result"].as_array().cloned().unwrap_or_default();
    result(&api_until(prometheus, &path, |data| done(&result(data))))
}
