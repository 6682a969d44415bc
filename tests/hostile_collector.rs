//! Collectors that attack or stall the exporter cost bounded memory and time: one that streams an
//! endless header line, one that dribbles its answer a byte at a time, one that never answers.
//! Each is a real TCP server on 127.0.0.1 speaking just enough HTTP to hurt; against each, every
//! export ends within its timeout (no retry stretches it), the failure is counted and explained,
//! and after three in a row `/health/ready` answers 503.

mod support;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use support::http_get::get;
use tasker_telemetry::http::MetricsServer;
use tasker_telemetry::spans::SpanPipeline;
use tasker_telemetry::{TaskScope, Telemetry, TelemetryConfig};
use tracing_subscriber::layer::SubscriberExt;

/// Each export's timeout in these tests.
const TIMEOUT: Duration = Duration::from_millis(1000);
/// What an export may take beyond its timeout (scheduling, the connection's teardown): well
/// under one more timeout, so that a retry after a timeout would show.
const SLACK: Duration = Duration::from_millis(900);

#[derive(Clone, Copy, Debug)]
enum Hostility {
    /// `HTTP/1.1 200 OK` and then one header line that never ends.
    EndlessHeader,
    /// A valid answer, one byte every 100 ms.
    Dribble,
    /// Reads the request, answers nothing, keeps the connection open.
    Silent,
}

/// A hostile collector; counts the bytes it managed to send.
struct Collector {
    port: u16,
    sent: Arc<AtomicU64>,
}

impl Collector {
    fn start(hostility: Hostility) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let sent = Arc::new(AtomicU64::new(0));
        let counter = sent.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let counter = counter.clone();
                std::thread::spawn(move || serve(stream, hostility, &counter));
            }
        });
        Self { port, sent }
    }
}

/// Reads the request head and body (as far as the client sends), then misbehaves until the
/// client goes away.
fn serve(mut stream: TcpStream, hostility: Hostility, sent: &AtomicU64) {
    let mut buffer = [0u8; 64 * 1024];
    let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
    let _ = stream.read(&mut buffer);
    let _ = stream.set_read_timeout(None);
    let mut send = |bytes: &[u8]| -> bool {
        let ok = stream.write_all(bytes).is_ok();
        if ok {
            sent.fetch_add(bytes.len() as u64, Ordering::Relaxed);
        }
        ok
    };
    match hostility {
        Hostility::EndlessHeader => {
            if !send(b"HTTP/1.1 200 OK\r\nX-Flood: ") {
                return;
            }
            let flood = vec![b'a'; 64 * 1024];
            while send(&flood) {}
        }
        Hostility::Dribble => {
            let answer = b"HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n";
            for byte in answer.iter().cycle() {
                if !send(std::slice::from_ref(byte)) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        Hostility::Silent => {
            // Until the client hangs up.
            while matches!(stream.read(&mut buffer), Ok(n) if n > 0) {}
        }
    }
}

/// Resident memory of this process, in bytes.
fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

fn attack(hostility: Hostility) {
    let collector = Collector::start(hostility);
    let config = TelemetryConfig::builder()
        .otlp_endpoint(format!("http://127.0.0.1:{}", collector.port))
        .build()
        .unwrap();
    let config = config
        .with_env_from(|name| {
            (name == "OTEL_EXPORTER_OTLP_TIMEOUT").then(|| TIMEOUT.as_millis().to_string())
        })
        .unwrap();
    let pipeline = SpanPipeline::new(&config).unwrap();
    let telemetry = Telemetry::new(config.clone()).unwrap();
    telemetry.mark_ready();
    let server =
        MetricsServer::start(&telemetry, Some(&pipeline), ([127, 0, 0, 1], 0).into()).unwrap();
    let ready = || get(server.addr(), "/health/ready", &[]).status;
    assert_eq!(ready(), 200, "{hostility:?}: ready before any export");

    let memory_before = resident_bytes();
    for round in 1..=3u64 {
        let subscriber = tracing_subscriber::registry().with(pipeline.layer());
        tracing::subscriber::with_default(subscriber, || {
            let task = TaskScope::new(&telemetry, format!("hostile-{round}"), "checkout");
            let step = task.step(format!("hostile-{round}/a"), "a");
            let _: Result<u32, std::io::Error> = step.run_attempt(1, || Ok(1));
            task.cancel(Default::default());
        });
        let started = Instant::now();
        let report = pipeline.flush();
        let took = started.elapsed();
        assert!(
            took <= TIMEOUT + SLACK,
            "{hostility:?}: export {round} took {took:?} (timeout {TIMEOUT:?})"
        );
        assert_eq!(report.failed_exports, round, "{hostility:?}: {report:?}");
        assert_eq!(report.exported, 0, "{hostility:?}");
        let error = report.last_error.unwrap_or_default();
        assert!(!error.is_empty(), "{hostility:?}: the failure is explained");
        println!("{hostility:?}: export {round} failed in {took:?}: {error}");
    }
    let grown = resident_bytes().saturating_sub(memory_before);
    assert!(
        grown < 16 << 20,
        "{hostility:?}: memory grew by {grown} bytes"
    );
    assert_eq!(ready(), 503, "{hostility:?}: readiness turns red");
    let sent = collector.sent.load(Ordering::Relaxed);
    println!("{hostility:?}: the collector sent {sent} bytes; memory grew by {grown} bytes");
    if let Hostility::EndlessHeader = hostility {
        // The flood was real (the kernel took it; the client read a bounded head of it).
        assert!(sent > 4 << 20, "{sent} bytes sent");
    }
    drop(server);
    let report = pipeline.shutdown();
    assert_eq!(report.ended, report.failed + report.dropped, "{report:?}");
}

#[test]
fn an_endless_header_line_costs_bounded_memory_and_one_timeout() {
    attack(Hostility::EndlessHeader);
}

#[test]
fn a_dribbling_collector_is_cut_off_at_the_timeout() {
    attack(Hostility::Dribble);
}

#[test]
fn a_silent_collector_is_cut_off_at_the_timeout() {
    attack(Hostility::Silent);
}
