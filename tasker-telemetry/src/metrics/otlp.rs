//! The registry's instruments as an OTLP metrics request (cargo feature `otlp-metrics`):
//! cumulative sums, gauges and histograms. [`export::OtlpMetricsExporter`](crate::export::OtlpMetricsExporter)
//! pushes them.

use std::time::{SystemTime, UNIX_EPOCH};

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint,
    ResourceMetrics, ScopeMetrics, Sum, metric, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;

use super::snapshot::{MetricKind, MetricsSnapshot, SeriesValue};

fn attr(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.to_owned())),
        }),
        ..Default::default()
    }
}

fn nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// Encodes a snapshot as an OTLP `ExportMetricsServiceRequest` (cumulative temporality; start
/// time = when the process's telemetry started).
pub fn otlp_request(
    snapshot: &MetricsSnapshot,
    service_name: &str,
    service_version: &str,
    start: SystemTime,
) -> Vec<u8> {
    let resource = [
        ("service.name".to_owned(), service_name.to_owned()),
        ("service.version".to_owned(), service_version.to_owned()),
        ("service.framework".to_owned(), "tasker".to_owned()),
    ];
    otlp_request_for(snapshot, &resource, start)
}

/// [`otlp_request`] with the whole resource given (see
/// [`TelemetryConfig::resource`](crate::TelemetryConfig::resource)).
pub fn otlp_request_for(
    snapshot: &MetricsSnapshot,
    resource: &[(String, String)],
    start: SystemTime,
) -> Vec<u8> {
    let start_nanos = nanos(start);
    let now = nanos(snapshot.timestamp.as_system_time());
    let cumulative = AggregationTemporality::Cumulative as i32;
    let metrics = snapshot
        .families
        .iter()
        .filter(|f| !f.series.is_empty())
        .map(|family| {
            let attributes = |values: &[String]| -> Vec<KeyValue> {
                family
                    .label_names
                    .iter()
                    .zip(values)
                    .map(|(k, v)| attr(k, v))
                    .collect()
            };
            let number = |values: &[String], v: f64| NumberDataPoint {
                attributes: attributes(values),
                start_time_unix_nano: start_nanos,
                time_unix_nano: now,
                value: Some(number_data_point::Value::AsDouble(v)),
                ..Default::default()
            };
            let data = match family.kind {
                MetricKind::Counter => metric::Data::Sum(Sum {
                    data_points: family
                        .series
                        .iter()
                        .filter_map(|s| match s.value {
                            SeriesValue::Counter(v) => Some(number(&s.label_values, v)),
                            _ => None,
                        })
                        .collect(),
                    aggregation_temporality: cumulative,
                    is_monotonic: true,
                }),
                MetricKind::Gauge => metric::Data::Gauge(Gauge {
                    data_points: family
                        .series
                        .iter()
                        .filter_map(|s| match s.value {
                            SeriesValue::Gauge(v) => Some(number(&s.label_values, v)),
                            _ => None,
                        })
                        .collect(),
                }),
                MetricKind::Histogram => metric::Data::Histogram(Histogram {
                    data_points: family
                        .series
                        .iter()
                        .filter_map(|s| match &s.value {
                            SeriesValue::Histogram {
                                buckets,
                                sum,
                                count,
                            } => {
                                let mut previous = 0;
                                let bucket_counts = buckets
                                    .iter()
                                    .map(|(_, cumulative)| {
                                        let n = cumulative.saturating_sub(previous);
                                        previous = *cumulative;
                                        n
                                    })
                                    .collect();
                                Some(HistogramDataPoint {
                                    attributes: attributes(&s.label_values),
                                    start_time_unix_nano: start_nanos,
                                    time_unix_nano: now,
                                    count: *count,
                                    sum: Some(*sum),
                                    bucket_counts,
                                    explicit_bounds: buckets
                                        .iter()
                                        .map(|(le, _)| *le)
                                        .filter(|le| le.is_finite())
                                        .collect(),
                                    ..Default::default()
                                })
                            }
                            _ => None,
                        })
                        .collect(),
                    aggregation_temporality: cumulative,
                }),
            };
            Metric {
                name: family.name.clone(),
                description: family.help.clone(),
                unit: match family.unit.as_deref() {
                    Some("seconds") => "s".to_owned(),
                    Some(other) => other.to_owned(),
                    None => String::new(),
                },
                data: Some(data),
                ..Default::default()
            }
        })
        .collect();
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: resource.iter().map(|(k, v)| attr(k, v)).collect(),
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                scope: Some(InstrumentationScope {
                    name: "tasker-telemetry".to_owned(),
                    version: env!("CARGO_PKG_VERSION").to_owned(),
                    ..Default::default()
                }),
                metrics,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
    .encode_to_vec()
}
