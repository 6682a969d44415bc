//! The metrics server under hostile and heavy HTTP traffic, over real TCP on 127.0.0.1: 1,000
//! concurrent scrapes all get the complete, identical 200 answer; silent clients, clients that
//! dribble their headers a byte at a time and idle keep-alive clients are cut off once the header
//! read timeout passes, while other clients keep being answered; a 1 MiB header, too many headers,
//! an overlong request line and non-HTTP bytes get a 4xx or a closed connection, with bounded
//! memory, and the server answers normally after each; and with `metrics_auth_token` set no path
//! trick (`//metrics`, `/metrics/`, `/%6Detrics`, `/./metrics`, `/METRICS`, `HEAD`, query strings,
//! absolute URIs) and no header trick (name case, `Basic`, empty, partial, prefixed or extended
//! tokens, other headers) reaches a metric without the token, and the health endpoints keep their
//! documented behaviour. Dropping the server returns within seconds even with slow clients
//! attached.
//!
//! An HTTP/1.1 request without exactly one `Host`, or with a bare-LF line, gets 400; clients
//! that stop reading a 20 MB scrape are cut off by the write timeout while others are served;
//! open connections stay within the bound, the next client served when one closes.
//!
//! `TASKER_SOAK=1` raises the concurrent scrapes to 5,000 and the slow clients to 200.

mod support;

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::{Arc, Barrier, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use support::http_get::get;
use tasker_telemetry::http::{MAX_REQUEST_HEAD_BYTES, MetricsServer, ServerOptions};
use tasker_telemetry::scope::StepCounts;
use tasker_telemetry::{TaskScope, Telemetry, TelemetryConfig};

/// The tests measure time and memory; one at a time keeps them from disturbing each other.
fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

fn soak() -> bool {
    std::env::var_os("TASKER_SOAK").is_some_and(|v| v != "0")
}

const TOKEN: &str = "s3cret-Token-42";
/// A metric only an authorized scrape may show.
const CANARY: &str = "robustness_canary_total";

fn telemetry(auth: bool) -> Telemetry {
    let mut builder = TelemetryConfig::builder();
    if auth {
        builder = builder
            .metrics_auth_required(true)
            .metrics_auth_token(TOKEN);
    }
    let telemetry = Telemetry::new(builder.build().unwrap()).unwrap();
    telemetry
        .metrics()
        .counter(CANARY, "Seen only by authorized scrapes.", &[])
        .unwrap()
        .with(&[])
        .inc();
    let task = TaskScope::new(&telemetry, "t1", "robust");
    task.start();
    task.complete(StepCounts::default());
    telemetry
}

/// A raw exchange: what the server sent before closing (or before `limit`), and whether it
/// closed.
struct Exchange {
    bytes: Vec<u8>,
    closed: bool,
}

impl Exchange {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }

    fn status(&self) -> Option<u16> {
        let text = self.text();
        let rest = text
            .strip_prefix("HTTP/1.1 ")
            .or_else(|| text.strip_prefix("HTTP/1.0 "))?;
        rest.get(..3)?.parse().ok()
    }
}

/// Reads until the server closes (or resets) the connection, or `limit` passes.
fn read_all(stream: &mut TcpStream, limit: Duration) -> Exchange {
    let deadline = Instant::now() + limit;
    let mut bytes = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Exchange {
                bytes,
                closed: false,
            };
        }
        stream.set_read_timeout(Some(left)).unwrap();
        match stream.read(&mut buf) {
            Ok(0) => {
                return Exchange {
                    bytes,
                    closed: true,
                };
            }
            Ok(n) => bytes.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => {
                return Exchange {
                    bytes,
                    closed: true,
                };
            }
        }
    }
}

/// Sends `request` whole (ignoring a refusal mid-way), half-closes, and reads the answer.
fn raw(addr: SocketAddr, request: &[u8]) -> Exchange {
    let mut stream = TcpStream::connect(addr).unwrap();
    let _ = stream.write_all(request);
    let _ = stream.shutdown(Shutdown::Write);
    read_all(&mut stream, Duration::from_secs(10))
}

/// A normal scrape succeeds: the server is still serving.
fn assert_serving(addr: SocketAddr, after: &str) {
    let response = get(addr, "/metrics", &[]);
    assert_eq!(response.status, 200, "no longer serving after {after}");
    assert!(
        response.body.contains(CANARY),
        "incomplete scrape after {after}"
    );
}

fn scrape_request(addr: SocketAddr) -> String {
    format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")
}

/// Splits an answer into status, `Content-Length` and body.
fn parse_answer(bytes: &[u8]) -> (u16, Option<usize>, Vec<u8>) {
    let split = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a complete head");
    let head = String::from_utf8_lossy(&bytes[..split]).into_owned();
    let status = head
        .strip_prefix("HTTP/1.1 ")
        .and_then(|s| s.get(..3))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let length = head
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse().ok());
    (status, length, bytes[split + 4..].to_vec())
}

#[test]
fn a_thousand_concurrent_scrapes_all_get_the_complete_answer() {
    let _serial = serial();
    let telemetry = telemetry(false);
    let server = MetricsServer::local(&telemetry, None, 0).unwrap();
    let addr = server.addr();
    let reference = get(addr, "/metrics", &[]);
    assert_eq!(reference.status, 200);
    assert!(reference.body.contains(CANARY));
    assert!(
        reference
            .body
            .contains("tasker_tasks_total{task_name=\"robust\",status=\"completed\"} 1\n")
    );
    let expected = Arc::new(reference.body.into_bytes());

    let (threads, per_thread) = if soak() { (100, 50) } else { (50, 20) };
    let total = threads * per_thread;
    // Every connection is open before any request is sent, so all of them are in flight at once.
    let all_connected = Arc::new(Barrier::new(threads));
    let started = Instant::now();
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let all_connected = all_connected.clone();
            let expected = expected.clone();
            std::thread::spawn(move || {
                let mut streams: Vec<TcpStream> = (0..per_thread)
                    .map(|_| TcpStream::connect(addr).expect("connect"))
                    .collect();
                all_connected.wait();
                for stream in &mut streams {
                    stream.write_all(scrape_request(addr).as_bytes()).unwrap();
                }
                let mut served = 0;
                for stream in &mut streams {
                    let answer = read_all(stream, Duration::from_secs(60));
                    assert!(answer.closed, "an answer never ended");
                    let (status, length, body) = parse_answer(&answer.bytes);
                    assert_eq!(status, 200);
                    assert_eq!(length, Some(body.len()), "truncated body");
                    assert!(body == *expected, "a scrape differs from the reference");
                    served += 1;
                }
                served
            })
        })
        .collect();
    let served: usize = workers.into_iter().map(|w| w.join().unwrap()).sum();
    assert_eq!(served, total);
    println!(
        "figures: {served} concurrent scrapes, all 200 and byte-identical, in {:?}",
        started.elapsed()
    );
    assert_serving(addr, "the concurrent scrapes");
}

/// How a slow client ended.
#[derive(Debug)]
struct CutOff {
    after: Duration,
    answer: Vec<u8>,
}

/// Connects and sends nothing; returns when the server closes the connection.
fn silent_client(addr: SocketAddr) -> CutOff {
    let mut stream = TcpStream::connect(addr).unwrap();
    let started = Instant::now();
    let answer = read_all(&mut stream, Duration::from_secs(20));
    assert!(answer.closed, "a silent client was never cut off");
    CutOff {
        after: started.elapsed(),
        answer: answer.bytes,
    }
}

/// Sends a request head one byte every `pace`, slower than the timeout allows; returns when a
/// write fails or the server closes.
fn dribbling_client(addr: SocketAddr, pace: Duration) -> CutOff {
    let mut stream = TcpStream::connect(addr).unwrap();
    let started = Instant::now();
    let head = scrape_request(addr).into_bytes();
    stream.set_nonblocking(true).unwrap();
    let mut answer = Vec::new();
    for byte in head.iter().cycle().take(10_000) {
        if stream.write_all(&[*byte]).is_err() {
            break;
        }
        let mut buf = [0u8; 1024];
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(_) => break,
        }
        std::thread::sleep(pace);
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "a dribbling client was never cut off"
        );
    }
    CutOff {
        after: started.elapsed(),
        answer,
    }
}

/// Sends one complete request on a keep-alive connection, reads the answer, then idles.
fn idle_keep_alive_client(addr: SocketAddr) -> CutOff {
    let mut stream = TcpStream::connect(addr).unwrap();
    let request = format!("GET /health/live HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    let mut first = Vec::new();
    let mut buf = [0u8; 1024];
    while !first.windows(15).any(|w| w == b"{\"status\":\"ok\"}") {
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let n = stream.read(&mut buf).expect("first answer");
        assert!(n > 0, "closed before answering");
        first.extend_from_slice(&buf[..n]);
    }
    let started = Instant::now();
    let rest = read_all(&mut stream, Duration::from_secs(20));
    assert!(rest.closed, "an idle keep-alive client was never cut off");
    CutOff {
        after: started.elapsed(),
        answer: rest.bytes,
    }
}

#[test]
fn slow_clients_are_cut_off_after_the_header_read_timeout_while_others_are_served() {
    let _serial = serial();
    let timeout = Duration::from_secs(1);
    let telemetry = telemetry(false);
    let options = ServerOptions::default().with_header_read_timeout(timeout);
    let server =
        MetricsServer::start_with(&telemetry, None, ([127, 0, 0, 1], 0).into(), options).unwrap();
    let addr = server.addr();
    let (silent, dribbling, idle) = if soak() { (150, 40, 10) } else { (30, 8, 4) };

    let mut clients = Vec::new();
    for _ in 0..silent {
        clients.push(("silent", std::thread::spawn(move || silent_client(addr))));
    }
    for _ in 0..dribbling {
        let pace = Duration::from_millis(100);
        clients.push((
            "dribbling",
            std::thread::spawn(move || dribbling_client(addr, pace)),
        ));
    }
    for _ in 0..idle {
        clients.push((
            "idle keep-alive",
            std::thread::spawn(move || idle_keep_alive_client(addr)),
        ));
    }

    // While they hang on, scrapes keep being answered, each promptly.
    let mut scrapes = 0;
    let mut slowest = Duration::ZERO;
    let hold = Instant::now();
    while hold.elapsed() < timeout.mul_f64(0.9) {
        let started = Instant::now();
        let response = get(addr, "/metrics", &[]);
        assert_eq!(response.status, 200);
        assert!(response.body.contains(CANARY));
        slowest = slowest.max(started.elapsed());
        scrapes += 1;
    }
    assert!(
        scrapes >= 5,
        "only {scrapes} scrapes in {:?}",
        hold.elapsed()
    );
    assert!(
        slowest < Duration::from_millis(500),
        "a scrape took {slowest:?} while slow clients held connections"
    );

    let mut cut_offs = Vec::new();
    for (kind, client) in clients {
        let cut = client.join().unwrap();
        // Never before the timeout (less scheduling slack), and not long after it.
        assert!(
            cut.after >= timeout.mul_f64(0.8),
            "{kind} client cut off early, after {:?}",
            cut.after
        );
        assert!(
            cut.after <= timeout + Duration::from_secs(4),
            "{kind} client held on for {:?}",
            cut.after
        );
        assert!(
            !String::from_utf8_lossy(&cut.answer).contains("HTTP/1.1 200"),
            "{kind} client was served"
        );
        cut_offs.push((kind, cut.after));
    }
    let longest = cut_offs.iter().map(|(_, d)| *d).max().unwrap_or_default();
    println!(
        "figures: header read timeout {timeout:?}: {} slow clients ({silent} silent, {dribbling} \
         dribbling 1 byte/100 ms, {idle} idle keep-alive) all cut off, the last after {longest:?}; \
         {scrapes} scrapes served meanwhile, slowest {slowest:?}",
        cut_offs.len()
    );
    assert_serving(addr, "the slow clients");
}

#[test]
fn stopping_the_server_does_not_wait_on_slow_clients() {
    let _serial = serial();
    let telemetry = telemetry(false);
    // A timeout far beyond the test, so only the shutdown can end these connections.
    let options = ServerOptions::default().with_header_read_timeout(Duration::from_secs(600));
    let server =
        MetricsServer::start_with(&telemetry, None, ([127, 0, 0, 1], 0).into(), options).unwrap();
    let addr = server.addr();
    let mut silent = TcpStream::connect(addr).unwrap();
    let mut partial = TcpStream::connect(addr).unwrap();
    partial
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    assert_serving(addr, "two slow clients connected");
    let started = Instant::now();
    drop(server);
    let stopped_after = started.elapsed();
    assert!(
        stopped_after < Duration::from_secs(5),
        "dropping the server took {stopped_after:?}"
    );
    for stream in [&mut silent, &mut partial] {
        let rest = read_all(stream, Duration::from_secs(5));
        assert!(rest.closed, "a slow client outlived the server");
    }
    println!("figures: server with 2 slow clients attached stopped in {stopped_after:?}");
}

#[test]
fn oversized_heads_and_garbage_get_4xx_or_close_and_the_server_keeps_serving() {
    let _serial = serial();
    let telemetry = telemetry(false);
    let server = MetricsServer::local(&telemetry, None, 0).unwrap();
    let addr = server.addr();

    // 50 clients at once, each sending a 1 MiB header.
    let big = Arc::new(
        format!(
            "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
            "a".repeat(1 << 20)
        )
        .into_bytes(),
    );
    let before = support::process::resident_kb() as u64 * 1024;
    let senders: Vec<_> = (0..50)
        .map(|_| {
            let big = big.clone();
            std::thread::spawn(move || {
                let answer = raw(addr, &big);
                assert!(answer.closed, "a 1 MiB header left the connection open");
                answer.status()
            })
        })
        .collect();
    let statuses: Vec<Option<u16>> = senders.into_iter().map(|s| s.join().unwrap()).collect();
    let growth = (support::process::resident_kb() as u64 * 1024).saturating_sub(before);
    for status in &statuses {
        assert!(
            matches!(status, None | Some(431)),
            "a 1 MiB header got {status:?}"
        );
    }
    // Unbounded buffering would hold 50 MiB; the head limit allows 50 x 64 KiB.
    assert!(
        growth < 16 << 20,
        "resident memory grew by {growth} bytes for 50 oversized requests"
    );
    let answered_431 = statuses.iter().filter(|s| **s == Some(431)).count();
    println!(
        "figures: 50 concurrent 1 MiB headers: {answered_431} answered 431, {} closed without \
         an answer; resident memory grew {} KiB (head limit {} KiB)",
        50 - answered_431,
        growth / 1024,
        MAX_REQUEST_HEAD_BYTES / 1024
    );
    assert_serving(addr, "1 MiB headers");

    let many_headers = format!(
        "GET /metrics HTTP/1.1\r\nHost: x\r\n{}\r\n",
        (0..500)
            .map(|i| format!("X-H{i}: v\r\n"))
            .collect::<String>()
    );
    let long_line = format!(
        "GET /metrics?{} HTTP/1.1\r\nHost: x\r\n\r\n",
        "q".repeat(200_000)
    );
    let hostile: Vec<(&str, Vec<u8>)> = vec![
        ("500 headers", many_headers.into_bytes()),
        ("a 200 kB request line", long_line.into_bytes()),
        (
            "a TLS ClientHello",
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03".to_vec(),
        ),
        (
            "binary noise",
            (0..=255u8).rev().cycle().take(4096).collect(),
        ),
        ("a bare line", b"hello\r\n\r\n".to_vec()),
        (
            "HTTP/2 preface",
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec(),
        ),
        (
            "unknown version",
            b"GET /metrics HTTP/9.9\r\nHost: x\r\n\r\n".to_vec(),
        ),
        (
            "NUL in a header",
            b"GET /metrics HTTP/1.1\r\nHost: x\x00y\r\n\r\n".to_vec(),
        ),
        (
            "a space before the colon",
            b"GET /metrics HTTP/1.1\r\nHost : x\r\n\r\n".to_vec(),
        ),
        (
            "conflicting lengths",
            b"GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab"
                .to_vec(),
        ),
        (
            "a bad chunk size",
            b"POST /metrics HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"
                .to_vec(),
        ),
        ("only CRLFs", b"\r\n\r\n\r\n\r\n".to_vec()),
    ];
    for (what, request) in &hostile {
        let answer = raw(addr, request);
        assert!(answer.closed, "{what}: connection left open");
        let text = answer.text();
        assert!(
            answer.bytes.is_empty()
                || text.starts_with("HTTP/1.1 4")
                || text.starts_with("HTTP/1.1 505"),
            "{what}: got {text:?}"
        );
        assert!(!text.contains(CANARY), "{what}: served metrics");
        println!("figures: {what}: {:?}", answer.status());
        assert_serving(addr, what);
    }
}

/// A request with extra header lines, `Connection: close`.
fn ask(addr: SocketAddr, method: &str, target: &str, headers: &[&str]) -> Exchange {
    let mut request =
        format!("{method} {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for header in headers {
        request.push_str(header);
        request.push_str("\r\n");
    }
    request.push_str("\r\n");
    raw(addr, request.as_bytes())
}

#[test]
fn auth_cannot_be_bypassed_by_path_or_header_tricks() {
    let _serial = serial();
    let telemetry = telemetry(true);
    let server = MetricsServer::local(&telemetry, None, 0).unwrap();
    let addr = server.addr();
    let bearer = format!("Authorization: Bearer {TOKEN}");

    // The paths that serve metrics (the server's /metrics and the configured endpoint), also with
    // query strings and in absolute form: 401 without the token, 200 with it.
    let serving = [
        "/metrics".to_owned(),
        "/tasker/metrics".to_owned(),
        "/metrics?".to_owned(),
        "/metrics?format=json".to_owned(),
        "/metrics?format=csv".to_owned(),
        "/metrics?format=openmetrics".to_owned(),
        "/metrics?format=xml".to_owned(),
        "/metrics?format=json&format=csv".to_owned(),
        "/metrics?token=s3cret-Token-42".to_owned(),
        "/metrics?access_token=s3cret-Token-42".to_owned(),
        "/metrics?%%".to_owned(),
        // The fragment is not part of the path: this is /metrics.
        "/metrics#frag".to_owned(),
        "/tasker/metrics?format=json".to_owned(),
        format!("http://{addr}/metrics"),
        format!("http://{addr}/tasker/metrics?format=csv"),
    ];
    let mut refused = 0;
    for target in &serving {
        for method in ["GET", "HEAD"] {
            let answer = ask(addr, method, target, &[]);
            assert_eq!(
                answer.status(),
                Some(401),
                "{method} {target} without token"
            );
            let text = answer.text().to_ascii_lowercase();
            assert!(
                text.contains("www-authenticate: bearer"),
                "{method} {target}"
            );
            assert!(!text.contains(CANARY), "{method} {target} leaked metrics");
            refused += 1;
        }
        let answer = ask(addr, "GET", target, &[&bearer]);
        let status = answer.status();
        if target.contains("format=xml") || target.contains("format=json&format=csv") {
            // Authorized, then the query is judged.
            assert_eq!(status, Some(400), "{target} with token");
        } else {
            assert_eq!(status, Some(200), "{target} with token");
            assert!(answer.text().contains(CANARY), "{target} with token");
        }
    }

    // Look-alike paths serve nothing, with or without the token: only exact routes serve.
    let look_alikes = [
        "//metrics",
        "///metrics",
        "/metrics/",
        "/metrics//",
        "/%6Detrics",
        "/%6detrics",
        "/metric%73",
        "/./metrics",
        "/metrics/.",
        "/metrics/..",
        "/metrics..",
        "/foo/../metrics",
        "/METRICS",
        "/Metrics",
        "/metrics%00",
        "/metrics%20",
        "/metrics;x",
        "/tasker//metrics",
        "/tasker/metrics/",
        "/TASKER/METRICS",
        "/tasker/%6Detrics",
        "/health/status/",
        "//health/status",
        "/HEALTH/STATUS",
        "/health/%73tatus",
        "*",
        "/",
    ];
    for target in look_alikes {
        for headers in [&[][..], &[bearer.as_str()][..]] {
            for method in ["GET", "HEAD"] {
                let answer = ask(addr, method, target, headers);
                let status = answer.status();
                assert!(
                    matches!(status, Some(400 | 401 | 404)) || (status.is_none() && answer.closed),
                    "{method} {target} {headers:?}: {status:?}"
                );
                assert!(
                    !answer.text().contains(CANARY),
                    "{method} {target} served metrics"
                );
                refused += 1;
            }
        }
    }

    // Header tricks on the real path.
    let basic = format!("Authorization: Basic {TOKEN}");
    let partial = format!("Authorization: Bearer {}", &TOKEN[..TOKEN.len() - 1]);
    let extended = format!("Authorization: Bearer {TOKEN}0");
    let prefixed = format!("Authorization: Bearer x{TOKEN}");
    let shouted_token = format!("Authorization: Bearer {}", TOKEN.to_ascii_uppercase());
    let no_space = format!("Authorization: Bearer{TOKEN}");
    let wrong_header = format!("X-Authorization: Bearer {TOKEN}");
    let proxy = format!("Proxy-Authorization: Bearer {TOKEN}");
    let cookie = format!("Cookie: token={TOKEN}");
    let denied: Vec<&str> = vec![
        "Authorization: Bearer wrong",
        "AUTHORIZATION: Bearer wrong",
        "authorization: bearer wrong",
        &basic,
        "Authorization: Basic dXNlcjpzM2NyZXQtVG9rZW4tNDI=",
        "Authorization: Bearer",
        "Authorization: Bearer ",
        "Authorization:",
        "Authorization: ",
        &partial,
        &extended,
        &prefixed,
        &shouted_token,
        &no_space,
        &wrong_header,
        &proxy,
        &cookie,
    ];
    for header in &denied {
        for target in ["/metrics", "/tasker/metrics", "/health/status"] {
            let answer = ask(addr, "GET", target, &[header]);
            assert_eq!(answer.status(), Some(401), "{target} with {header:?}");
            assert!(!answer.text().contains(CANARY));
            assert!(!answer.text().contains("task_error_rate"));
            refused += 1;
        }
    }
    // The token under any case of the header name and the scheme is the same credential (names
    // and schemes are case-insensitive in HTTP).
    let allowed = [
        format!("authorization: Bearer {TOKEN}"),
        format!("AUTHORIZATION: Bearer {TOKEN}"),
        format!("AuThOrIzAtIoN: bearer {TOKEN}"),
        format!("Authorization: BEARER {TOKEN}"),
    ];
    for header in &allowed {
        let answer = ask(addr, "GET", "/metrics", &[header]);
        assert_eq!(answer.status(), Some(200), "{header:?}");
        assert!(answer.text().contains(CANARY));
    }
    // HEAD with the token: 200 with the headers only.
    let head = ask(addr, "HEAD", "/metrics", &[&bearer]);
    assert_eq!(head.status(), Some(200));
    assert!(!head.text().contains(CANARY));

    // Health: live and ready stay open and show no metric; status needs the token.
    let live = ask(addr, "GET", "/health/live", &[]);
    assert_eq!(live.status(), Some(200));
    assert!(
        live.text().ends_with("{\"status\":\"ok\"}"),
        "{}",
        live.text()
    );
    let ready = ask(addr, "GET", "/health/ready", &[]);
    assert_eq!(ready.status(), Some(503), "not marked ready yet");
    telemetry.mark_ready();
    let ready = ask(addr, "GET", "/health/ready", &[]);
    assert_eq!(ready.status(), Some(200));
    for answer in [&live, &ready] {
        assert!(!answer.text().contains(CANARY));
        assert!(!answer.text().contains("tasker_"));
    }
    let status = ask(addr, "GET", "/health/status", &[]);
    assert_eq!(status.status(), Some(401));
    let status = ask(addr, "GET", "/health/status", &[&bearer]);
    assert_eq!(status.status(), Some(200));
    assert!(status.text().contains("task_error_rate"));

    println!(
        "figures: {refused} unauthorized or look-alike requests refused, {} header tricks, \
         {} look-alike paths, 0 leaks",
        denied.len(),
        look_alikes.len()
    );
}

#[test]
fn requests_without_one_host_or_with_bare_lf_lines_get_400() {
    let _serial = serial();
    let telemetry = telemetry(false);
    let server = MetricsServer::local(&telemetry, None, 0).unwrap();
    let addr = server.addr();
    for (request, expected) in [
        (&b"GET /health/live HTTP/1.1\r\nHost: a\r\n\r\n"[..], 200),
        (b"GET /health/live HTTP/1.0\r\n\r\n", 200),
        (b"GET /health/live HTTP/1.1\r\n\r\n", 400),
        (
            b"GET /health/live HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
            400,
        ),
        (b"GET /health/live HTTP/1.1\nHost: a\n\n", 400),
        (b"GET /health/live HTTP/1.1\r\nHost: a\n\r\n", 400),
        (b"GET /health/live HTTP/1.1\r\nHost: a\r\nX-A: 1\n\r\n", 400),
    ] {
        let answer = raw(addr, request);
        assert_eq!(
            answer.status(),
            Some(expected),
            "{:?}: {}",
            String::from_utf8_lossy(request),
            answer.text()
        );
    }
    assert_serving(addr, "the bad requests");
}

/// Waits until `condition` holds, for at most `limit` (polled: the server's own counters say
/// when it has acted).
fn eventually(limit: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if condition() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    condition()
}

#[test]
fn clients_that_stop_reading_a_large_scrape_are_cut_off_while_others_are_served() {
    let _serial = serial();
    let telemetry = telemetry(false);
    // About 20 MB of exposition: more than the kernel buffers on loopback hold for a client
    // that reads nothing.
    let family = telemetry
        .metrics()
        .counter("robustness_wide_total", "Many long series.", &["path"])
        .unwrap();
    let long = "p".repeat(1000);
    for i in 0..10_000 {
        family.with(&[format!("{i}{long}").as_str()]).inc();
    }
    let options = ServerOptions::default().with_write_timeout(Duration::from_millis(500));
    let server =
        MetricsServer::start_with(&telemetry, None, ([127, 0, 0, 1], 0).into(), options).unwrap();
    let addr = server.addr();
    let stuck: Vec<TcpStream> = (0..5)
        .map(|_| {
            let mut stream = TcpStream::connect(addr).unwrap();
            stream.write_all(scrape_request(addr).as_bytes()).unwrap();
            stream
        })
        .collect();
    // Served while the stuck clients hold their connections.
    let full = get(addr, "/metrics", &[]);
    assert_eq!(full.status, 200);
    assert!(full.body.len() > 10_000_000, "{} bytes", full.body.len());
    assert!(
        eventually(Duration::from_secs(60), || server
            .connection_stats()
            .write_timeouts
            >= 5),
        "{:?}",
        server.connection_stats()
    );
    for mut stream in stuck {
        let answer = read_all(&mut stream, Duration::from_secs(30));
        assert!(answer.closed, "the server closed the stuck connection");
        assert!(
            answer.bytes.len() < full.body.len(),
            "cut off: {} of {} bytes",
            answer.bytes.len(),
            full.body.len()
        );
    }
    assert_serving(addr, "the stuck clients");
}

#[test]
fn open_connections_are_bounded_and_the_next_client_is_served_when_one_closes() {
    let _serial = serial();
    let telemetry = telemetry(false);
    let options = ServerOptions::default()
        .with_max_connections(3)
        .with_header_read_timeout(Duration::from_secs(120));
    let server =
        MetricsServer::start_with(&telemetry, None, ([127, 0, 0, 1], 0).into(), options).unwrap();
    let addr = server.addr();
    let mut idle: Vec<TcpStream> = (0..3).map(|_| TcpStream::connect(addr).unwrap()).collect();
    assert!(eventually(Duration::from_secs(30), || {
        server.connection_stats().open == 3
    }));
    // More clients connect (the kernel queues them) while every slot is held.
    let waiting: Vec<_> = (0..4)
        .map(|_| {
            std::thread::spawn(move || {
                let mut stream = TcpStream::connect(addr).unwrap();
                stream
                    .write_all(
                        format!(
                            "GET /health/live HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
                        )
                        .as_bytes(),
                    )
                    .unwrap();
                read_all(&mut stream, Duration::from_secs(60))
            })
        })
        .collect();
    let stats = server.connection_stats();
    assert_eq!((stats.open, stats.most_open), (3, 3), "{stats:?}");
    // One idle client goes: the waiting ones are served through its slot, one after another.
    idle.pop();
    for handle in waiting {
        let answer = handle.join().unwrap();
        assert_eq!(answer.status(), Some(200), "{}", answer.text());
    }
    assert_eq!(server.connection_stats().most_open, 3);
    drop(idle);
}
