//! Self-test of the OTLP/HTTP test receiver (`support::otlp_receiver`): hand-built export
//! requests, encoded with prost and posted over a plain `TcpStream`, come back decoded exactly.

mod support;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, ArrayValue, InstrumentationScope, KeyValue, any_value,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status, span};
use prost::Message;
use support::otlp_receiver::{AttrValue, ReceivedEvent, ReceivedSpan, Receiver};

const LONG: Duration = Duration::from_secs(10);

fn kv(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

fn s(value: &str) -> any_value::Value {
    any_value::Value::StringValue(value.to_owned())
}

const TRACE_ID: [u8; 16] = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16];
const PARENT_ID: [u8; 8] = [0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8];
const CHILD_ID: [u8; 8] = [0xb1, 0xb2, 0xb3, 0xb4, 0xb5, 0xb6, 0xb7, 0xb8];

/// Two spans, parent and child, with attributes, an event and an error status.
fn export_request() -> ExportTraceServiceRequest {
    let parent = Span {
        trace_id: TRACE_ID.to_vec(),
        span_id: PARENT_ID.to_vec(),
        name: "task".to_owned(),
        kind: 1,
        start_time_unix_nano: 1_700_000_000_000_000_000,
        end_time_unix_nano: 1_700_000_000_250_000_000,
        attributes: vec![
            kv("task.name", s("import")),
            kv("task.attempt", any_value::Value::IntValue(3)),
        ],
        status: Some(Status {
            message: String::new(),
            code: 1,
        }),
        ..Default::default()
    };
    let child = Span {
        trace_id: TRACE_ID.to_vec(),
        span_id: CHILD_ID.to_vec(),
        parent_span_id: PARENT_ID.to_vec(),
        name: "step".to_owned(),
        kind: 1,
        start_time_unix_nano: 1_700_000_000_100_000_000,
        end_time_unix_nano: 1_700_000_000_200_000_000,
        attributes: vec![
            kv("step.name", s("fetch")),
            kv("step.ratio", any_value::Value::DoubleValue(0.5)),
            kv("step.retry", any_value::Value::BoolValue(true)),
            kv(
                "step.tags",
                any_value::Value::ArrayValue(ArrayValue {
                    values: vec![
                        AnyValue {
                            value: Some(s("a")),
                        },
                        AnyValue {
                            value: Some(any_value::Value::IntValue(2)),
                        },
                    ],
                }),
            ),
        ],
        events: vec![span::Event {
            time_unix_nano: 1_700_000_000_150_000_000,
            name: "exception".to_owned(),
            attributes: vec![kv("exception.message", s("connection refused"))],
            ..Default::default()
        }],
        status: Some(Status {
            message: "fetch failed".to_owned(),
            code: 2,
        }),
        ..Default::default()
    };
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![kv("service.name", s("selftest"))],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "tasker-telemetry".to_owned(),
                    version: "0.1.0".to_owned(),
                    ..Default::default()
                }),
                spans: vec![parent, child],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// What the receiver must decode [`export_request`] into, written out by hand.
fn expected_spans() -> Vec<ReceivedSpan> {
    let resource = BTreeMap::from([("service.name".to_owned(), AttrValue::Str("selftest".into()))]);
    vec![
        ReceivedSpan {
            trace_id: "0102030405060708090a0b0c0d0e0f10".to_owned(),
            span_id: "a1a2a3a4a5a6a7a8".to_owned(),
            parent_span_id: String::new(),
            name: "task".to_owned(),
            start_unix_nano: 1_700_000_000_000_000_000,
            end_unix_nano: 1_700_000_000_250_000_000,
            attributes: BTreeMap::from([
                ("task.name".to_owned(), AttrValue::Str("import".into())),
                ("task.attempt".to_owned(), AttrValue::Int(3)),
            ]),
            attribute_keys: vec!["task.name".to_owned(), "task.attempt".to_owned()],
            events: Vec::new(),
            status_code: 1,
            status_message: String::new(),
            resource: resource.clone(),
            scope_name: "tasker-telemetry".to_owned(),
        },
        ReceivedSpan {
            trace_id: "0102030405060708090a0b0c0d0e0f10".to_owned(),
            span_id: "b1b2b3b4b5b6b7b8".to_owned(),
            parent_span_id: "a1a2a3a4a5a6a7a8".to_owned(),
            name: "step".to_owned(),
            start_unix_nano: 1_700_000_000_100_000_000,
            end_unix_nano: 1_700_000_000_200_000_000,
            attributes: BTreeMap::from([
                ("step.name".to_owned(), AttrValue::Str("fetch".into())),
                ("step.ratio".to_owned(), AttrValue::Double(0.5)),
                ("step.retry".to_owned(), AttrValue::Bool(true)),
                ("step.tags".to_owned(), AttrValue::Other("[a, 2]".into())),
            ]),
            attribute_keys: ["step.name", "step.ratio", "step.retry", "step.tags"]
                .map(str::to_owned)
                .to_vec(),
            events: vec![ReceivedEvent {
                name: "exception".to_owned(),
                attributes: BTreeMap::from([(
                    "exception.message".to_owned(),
                    AttrValue::Str("connection refused".into()),
                )]),
            }],
            status_code: 2,
            status_message: "fetch failed".to_owned(),
            resource,
            scope_name: "tasker-telemetry".to_owned(),
        },
    ]
}

/// A minimal HTTP/1.1 client connection.
struct Client {
    writer: TcpStream,
    reader: BufReader<TcpStream>,
}

struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

impl Client {
    fn connect(receiver: &Receiver) -> Client {
        let writer = TcpStream::connect(receiver.addr()).expect("connect to the receiver");
        writer.set_read_timeout(Some(LONG)).unwrap();
        let reader = BufReader::new(writer.try_clone().unwrap());
        Client { writer, reader }
    }

    /// Sends raw bytes.
    fn send_raw(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).unwrap();
        self.writer.flush().unwrap();
    }

    /// POSTs `body` with a Content-Length.
    fn post(&mut self, path: &str, extra_headers: &str, body: &[u8]) -> Response {
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-protobuf\r\n\
             {extra_headers}Content-Length: {}\r\n\r\n",
            body.len()
        );
        let mut bytes = head.into_bytes();
        bytes.extend_from_slice(body);
        self.send_raw(&bytes);
        self.read_response()
    }

    /// POSTs `body` chunked, in uneven chunks, with a chunk extension and a trailer.
    fn post_chunked(&mut self, path: &str, body: &[u8]) -> Response {
        let mut bytes = format!(
            "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-protobuf\r\n\
             Transfer-Encoding: chunked\r\n\r\n"
        )
        .into_bytes();
        let mut rest = body;
        let mut size = 1;
        while !rest.is_empty() {
            let (chunk, tail) = rest.split_at(size.min(rest.len()));
            bytes.extend_from_slice(format!("{:X};ext=1\r\n", chunk.len()).as_bytes());
            bytes.extend_from_slice(chunk);
            bytes.extend_from_slice(b"\r\n");
            rest = tail;
            size = size * 3 + 1;
        }
        bytes.extend_from_slice(b"0\r\nX-Trailer: yes\r\n\r\n");
        self.send_raw(&bytes);
        self.read_response()
    }

    fn read_line(&mut self) -> String {
        let mut line = String::new();
        self.reader.read_line(&mut line).unwrap();
        line.trim_end_matches(['\r', '\n']).to_owned()
    }

    fn read_response(&mut self) -> Response {
        let status_line = self.read_line();
        let status = status_line
            .strip_prefix("HTTP/1.1 ")
            .and_then(|rest| rest.get(..3))
            .and_then(|code| code.parse().ok())
            .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
        let mut headers = Vec::new();
        loop {
            let line = self.read_line();
            if line.is_empty() {
                break;
            }
            let (name, value) = line.split_once(':').expect("header line");
            headers.push((name.to_owned(), value.trim().to_owned()));
        }
        let mut response = Response {
            status,
            headers,
            body: Vec::new(),
        };
        let length: usize = response
            .header("content-length")
            .expect("Content-Length in the response")
            .parse()
            .unwrap();
        response.body = vec![0; length];
        self.reader.read_exact(&mut response.body).unwrap();
        response
    }
}

#[test]
fn decodes_content_length_and_chunked_bodies_on_one_keep_alive_connection() {
    let receiver = Receiver::start();
    assert_eq!(
        receiver.endpoint(),
        format!("http://127.0.0.1:{}/v1/traces", receiver.addr().port())
    );
    assert_eq!(
        receiver.base_url(),
        format!("http://127.0.0.1:{}", receiver.addr().port())
    );
    let body = export_request().encode_to_vec();

    let mut client = Client::connect(&receiver);
    let first = client.post("/v1/traces", "", &body);
    assert_eq!(first.status, 200);
    assert_eq!(first.header("content-type"), Some("application/x-protobuf"));
    assert!(
        first.body.is_empty(),
        "an empty ExportTraceServiceResponse encodes to no bytes"
    );
    let second = client.post_chunked("/v1/traces", &body);
    assert_eq!(second.status, 200);

    let mut expected = expected_spans();
    expected.extend(expected_spans());
    assert_eq!(receiver.wait_for_spans(4, LONG), expected);
    assert_eq!(receiver.spans(), expected);
    assert_eq!(receiver.request_count(), 2);
    assert_eq!(receiver.raw_bodies(), [body.clone(), body.clone()].concat());
    assert_eq!(receiver.decode_errors(), Vec::<String>::new());

    let requests = receiver.requests();
    assert_eq!(
        requests[0].header("Content-Length"),
        Some(body.len().to_string().as_str())
    );
    assert_eq!(requests[1].header("transfer-encoding"), Some("chunked"));
    assert!(requests.iter().all(|r| r.method == "POST"));

    let child = &expected_spans()[1];
    assert_eq!(child.duration(), Duration::from_millis(100));
    assert_eq!(
        child.attr("step.name").and_then(AttrValue::as_str),
        Some("fetch")
    );
    assert_eq!(child.attr("step.name").and_then(AttrValue::as_i64), None);
    assert_eq!(
        expected_spans()[0]
            .attr("task.attempt")
            .and_then(AttrValue::as_i64),
        Some(3)
    );
    assert!(child.attr("missing").is_none());
}

#[test]
fn status_500_is_answered_and_the_request_still_recorded() {
    let receiver = Receiver::start_with_status(500);
    let body = export_request().encode_to_vec();
    let mut client = Client::connect(&receiver);
    assert_eq!(client.post("/v1/traces", "", &body).status, 500);
    // Keep-alive holds after an error status too.
    assert_eq!(client.post("/v1/traces", "", &body).status, 500);
    assert_eq!(receiver.request_count(), 2);
    assert_eq!(receiver.wait_for_requests(2, LONG), 2);
    assert_eq!(receiver.spans().len(), 4);
    assert_eq!(receiver.decode_errors(), Vec::<String>::new());

    let throttling = Receiver::start_with_status(429);
    let mut client = Client::connect(&throttling);
    assert_eq!(client.post("/v1/traces", "", &body).status, 429);
    assert_eq!(throttling.request_count(), 1);
}

#[test]
fn other_paths_are_answered_404_and_recorded() {
    let receiver = Receiver::start();
    let mut client = Client::connect(&receiver);
    assert_eq!(client.post("/v1/logs", "", b"metrics").status, 404);
    client.send_raw(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert_eq!(client.read_response().status, 404);

    assert_eq!(receiver.request_count(), 2);
    assert_eq!(receiver.raw_bodies(), b"metrics");
    assert!(receiver.spans().is_empty());
    assert_eq!(receiver.decode_errors(), Vec::<String>::new());
    let requests = receiver.requests();
    assert_eq!(
        (requests[1].method.as_str(), requests[1].path.as_str()),
        ("GET", "/health")
    );

    // 404 for other paths in every mode.
    let failing = Receiver::start_with_status(500);
    let mut client = Client::connect(&failing);
    assert_eq!(client.post("/v1/logs", "", b"").status, 404);
}

#[test]
fn undecodable_input_is_recorded_and_answered_with_4xx() {
    let receiver = Receiver::start();
    let mut client = Client::connect(&receiver);

    // Truncated protobuf: field 1, length 5, three bytes.
    assert_eq!(client.post("/v1/traces", "", b"\x0a\x05abc").status, 400);
    // Compressed bodies are not supported.
    let gzip = client.post(
        "/v1/traces",
        "Content-Encoding: gzip\r\n",
        &export_request().encode_to_vec(),
    );
    assert_eq!(gzip.status, 415);
    client.send_raw(
        b"POST /v1/traces HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}",
    );
    assert_eq!(client.read_response().status, 415);
    assert_eq!(receiver.request_count(), 3);

    // Malformed HTTP: a bad chunk size closes the connection after a 400.
    client.send_raw(
        b"POST /v1/traces HTTP/1.1\r\nContent-Type: application/x-protobuf\r\n\
          Transfer-Encoding: chunked\r\n\r\nzz\r\n",
    );
    let response = client.read_response();
    assert_eq!(response.status, 400);
    assert_eq!(response.header("connection"), Some("close"));

    // Non-HTTP garbage on a fresh connection.
    let mut garbage = Client::connect(&receiver);
    garbage.send_raw(b"\x16\x03\x01 hello\r\n\r\n");
    assert_eq!(garbage.read_response().status, 400);

    let errors = receiver.decode_errors();
    assert_eq!(errors.len(), 5, "{errors:#?}");
    assert!(
        errors[0].contains("not an ExportTraceServiceRequest"),
        "{errors:#?}"
    );
    assert!(errors[1].contains("gzip"), "{errors:#?}");
    assert!(errors[2].contains("application/json"), "{errors:#?}");
    assert!(errors[3].contains("chunk size"), "{errors:#?}");
    assert!(errors[4].contains("malformed HTTP"), "{errors:#?}");
    assert!(receiver.spans().is_empty());

    // The receiver still works afterwards.
    let mut client = Client::connect(&receiver);
    let ok = client.post("/v1/traces", "", &export_request().encode_to_vec());
    assert_eq!(ok.status, 200);
    assert_eq!(receiver.spans().len(), 2);
}

#[test]
fn wait_for_spans_returns_as_soon_as_spans_arrive() {
    let receiver = Receiver::start();
    let started = Instant::now();
    thread::scope(|scope| {
        scope.spawn(|| {
            let mut client = Client::connect(&receiver);
            let response = client.post("/v1/traces", "", &export_request().encode_to_vec());
            assert_eq!(response.status, 200);
        });
        let spans = receiver.wait_for_spans(2, Duration::from_secs(30));
        assert_eq!(spans, expected_spans());
        assert_eq!(receiver.wait_for_requests(1, Duration::from_secs(30)), 1);
    });
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "waited {:?}",
        started.elapsed()
    );
}

#[test]
fn wait_for_spans_returns_what_it_has_after_the_timeout() {
    let receiver = Receiver::start();
    let timeout = Duration::from_millis(200);

    let started = Instant::now();
    assert!(receiver.wait_for_spans(1, timeout).is_empty());
    assert!(started.elapsed() >= timeout);

    let mut client = Client::connect(&receiver);
    assert_eq!(
        client
            .post("/v1/traces", "", &export_request().encode_to_vec())
            .status,
        200
    );
    let started = Instant::now();
    assert_eq!(receiver.wait_for_spans(3, timeout), expected_spans());
    assert!(started.elapsed() >= timeout);
    let started = Instant::now();
    assert_eq!(receiver.wait_for_requests(2, timeout), 1);
    assert!(started.elapsed() >= timeout);
}

#[test]
fn drop_closes_open_connections_and_does_not_hang() {
    let receiver = Receiver::start();
    let addr = receiver.addr();
    let mut idle = Client::connect(&receiver);
    assert_eq!(idle.post("/v1/logs", "", b"").status, 404);
    // A connection that has sent half a request.
    let mut half = Client::connect(&receiver);
    half.send_raw(b"POST /v1/traces HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc");
    assert_eq!(receiver.wait_for_requests(1, LONG), 1);

    let started = Instant::now();
    drop(receiver);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "drop took {:?}",
        started.elapsed()
    );

    let mut rest = Vec::new();
    assert!(matches!(idle.reader.read_to_end(&mut rest), Ok(0) | Err(_)));
    assert!(
        TcpStream::connect(addr).is_err(),
        "still accepting after drop"
    );
}
