//! The workspace's example binaries, as `cargo test --workspace` builds them.
// Each test target uses a part.
#![allow(dead_code)]

use std::path::PathBuf;

/// The path of example `name`, failing the test with how to build it when it is missing.
pub fn example_binary(name: &str) -> PathBuf {
    // target/<profile>/deps/<test>-<hash> -> target/<profile>/examples/<name>
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(|d| d.parent()).unwrap().to_path_buf();
    let path = profile_dir.join("examples").join(name);
    assert!(
        path.exists(),
        "{} not built: run `cargo test --workspace` (it builds the examples)",
        path.display()
    );
    path
}

/// The main example, serving its metrics and timeline while it places orders in a loop
/// (`order_processing --serve --port 0`); stopped by its pid when dropped.
pub struct MainExample {
    child: std::process::Child,
    /// Where it serves `/metrics`, `/health/*` and `/tasks`.
    pub addr: std::net::SocketAddr,
    /// The timeline page's URL, as the example printed it.
    pub timeline_url: String,
}

impl Drop for MainExample {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl MainExample {
    /// Starts it and waits for the lines announcing its server (a condition, not a sleep).
    pub fn serve() -> Self {
        use std::io::BufRead;
        let mut child = std::process::Command::new(example_binary("order_processing"))
            .args(["--serve", "--port", "0"])
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut example = Self {
            child,
            addr: ([0, 0, 0, 0], 0).into(),
            timeline_url: String::new(),
        };
        let mut lines = std::io::BufReader::new(stdout).lines();
        for line in lines.by_ref() {
            let line = line.unwrap();
            // "serving http://ADDR/metrics ..." names the port it bound.
            if let Some(rest) = line.strip_prefix("serving http://") {
                example.addr = rest.split('/').next().unwrap().parse().unwrap();
            }
            if let Some(url) = line.strip_prefix("task timeline: ") {
                example.timeline_url = url.trim().to_owned();
                // The rest of its output is not read: drained so that it never blocks on a
                // full pipe.
                std::thread::spawn(move || lines.for_each(drop));
                return example;
            }
        }
        panic!("the main example exited without serving");
    }
}
