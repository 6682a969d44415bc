//! The task timeline routes: `/tasks` (an HTML page of the recent tasks, each with its
//! waterfall), `/tasks/{task_id}` (one task's page) and `/tasks/{task_id}.json` /
//! `/tasks.json` (the same data). Read from the in-process span store; the page has no
//! script and no external asset, so it works offline and in any browser.

use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::{AppState, authorized};
use crate::spans::{AttemptBar, SpanStore, TaskTimeline};

/// The path of the timeline page.
pub const TASKS_PATH: &str = "/tasks";

/// How many tasks `/tasks` and `/tasks.json` show, the most recent (each task stays reachable at
/// `/tasks/{task_id}` while the store keeps it).
pub const TASKS_PAGE_LIMIT: usize = 50;

fn store(state: &AppState) -> Result<&SpanStore, Box<Response>> {
    state.spans.as_ref().and_then(|s| s.store()).ok_or_else(|| {
        Box::new(
            (
                StatusCode::NOT_FOUND,
                "no span store: span_store_tasks is 0, or the router was given no span pipeline\n",
            )
                .into_response(),
        )
    })
}

pub(super) async fn tasks_page(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    if let Err(denied) = authorized(&state, &headers) {
        return *denied;
    }
    let store = match store(&state) {
        Ok(s) => s,
        Err(missing) => return *missing,
    };
    let timelines = TaskTimeline::recent(store, TASKS_PAGE_LIMIT);
    let title = format!("Tasks · {}", state.telemetry.config().service_name);
    html(page(&title, store.capacity(), &timelines, true))
}

pub(super) async fn tasks_json(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    if let Err(denied) = authorized(&state, &headers) {
        return *denied;
    }
    match store(&state) {
        Ok(store) => {
            let tasks: Vec<_> = TaskTimeline::recent(store, TASKS_PAGE_LIMIT)
                .into_iter()
                .map(|t| t.summary)
                .collect();
            super::json(StatusCode::OK, serde_json::json!({ "tasks": tasks }))
        }
        Err(missing) => *missing,
    }
}

/// `/tasks/{task_id}` and `/tasks/{task_id}.json`.
pub(super) async fn task(
    State(state): State<Arc<AppState>>,
    Path(file): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Err(denied) = authorized(&state, &headers) {
        return *denied;
    }
    let store = match store(&state) {
        Ok(s) => s,
        Err(missing) => return *missing,
    };
    let (task_id, as_json) = match file.strip_suffix(".json") {
        Some(id) => (id, true),
        None => (file.as_str(), false),
    };
    let Some(timeline) = TaskTimeline::of(store, task_id) else {
        return (
            StatusCode::NOT_FOUND,
            format!(
                "no task {task_id:?} in the span store (it keeps the last {} tasks)\n",
                store.capacity()
            ),
        )
            .into_response();
    };
    if as_json {
        return super::json(
            StatusCode::OK,
            serde_json::to_value(&timeline).unwrap_or_default(),
        );
    }
    let title = format!("Task {task_id}");
    html(page(&title, store.capacity(), &[timeline], false))
}

fn html(body: String) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            // The page carries span attributes: no script may run, nothing loads from elsewhere.
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; style-src 'unsafe-inline'; img-src data:",
            ),
        ],
        body,
    )
        .into_response()
}

/// `text` with HTML's special characters escaped, for element content and quoted attributes.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `text` as one path segment of a link.
fn path_segment(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

fn duration(ms: f64) -> String {
    if ms >= 1000.0 {
        format!("{:.2} s", ms / 1000.0)
    } else if ms >= 1.0 {
        format!("{ms:.1} ms")
    } else {
        format!("{:.0} µs", ms * 1000.0)
    }
}

const STYLE: &str = r#"
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #1d2330; }
h1 { font-size: 1.4em; } h2 { font-size: 1.1em; margin: 0 0 .5em; }
table.tasks { border-collapse: collapse; margin-bottom: 1.5em; }
table.tasks th, table.tasks td { padding: .25em .75em; border-bottom: 1px solid #dde; text-align: left; }
.status-failed { color: #b3261e; font-weight: 600; } .status-completed { color: #1b6e3a; }
section.timeline { border: 1px solid #dde; border-radius: 6px; padding: 1em; margin-bottom: 1.5em; }
.axis, .row { display: grid; grid-template-columns: 14em 1fr; align-items: center; }
.axis .scale { display: flex; justify-content: space-between; color: #667; font-size: .85em; }
.step { margin-top: .4em; } .step-name { font-weight: 600; }
.row { min-height: 1.6em; } .row .label { color: #445; padding-left: 1em; }
.track { position: relative; height: 1.3em; background: linear-gradient(90deg, #e3e6ec 1px, transparent 1px) 0 0 / 10% 100%, #f7f8fa; }
.bar { position: absolute; top: 0; height: 100%; min-width: 3px; }
.bar > summary { list-style: none; cursor: pointer; height: 100%; border-radius: 3px; background: #3f7fd6; color: #fff; font-size: .75em; white-space: nowrap; overflow: hidden; padding: 0 .3em; }
.bar > summary::-webkit-details-marker { display: none; }
.bar.failed > summary { background: #d0392b; }
.bar.unset > summary { background: #9aa0ad; }
.bar[open] > .detail { position: absolute; z-index: 2; top: 1.5em; left: 0; background: #fff; border: 1px solid #bbc; border-radius: 4px; padding: .5em .75em; box-shadow: 0 2px 8px #0002; min-width: 24em; }
.detail table td { padding: 0 .5em 0 0; vertical-align: top; font-size: .85em; }
.error { color: #b3261e; }
.meta { color: #667; }
"#;

fn page(title: &str, capacity: usize, timelines: &[TaskTimeline], list: bool) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title><style>{STYLE}</style></head><body>\n<h1>{}</h1>\n",
        escape(title),
        escape(title)
    );
    if list {
        let _ = writeln!(
            out,
            "<p class=\"meta\">The {} most recent tasks (at most {TASKS_PAGE_LIMIT} shown); the span store keeps the last {capacity}. <a href=\"/tasks.json\">JSON</a></p>",
            timelines.len()
        );
        out.push_str("<table class=\"tasks\"><thead><tr><th>task</th><th>name</th><th>status</th><th>duration</th><th>steps</th><th>attempts</th><th>failed attempts</th><th>correlation id</th></tr></thead><tbody>\n");
        for t in timelines {
            let s = &t.summary;
            let _ = writeln!(
                out,
                "<tr class=\"task\" data-task-id=\"{id}\"><td><a href=\"#task-{anchor}\">{id}</a></td><td>{name}</td><td class=\"status-{status_class}\">{status}</td><td>{duration}</td><td>{steps}</td><td>{attempts}</td><td>{failed}</td><td>{corr}</td></tr>",
                id = escape(&s.task_id),
                anchor = path_segment(&s.task_id),
                name = escape(&s.task_name),
                status_class = escape(&s.status.replace(' ', "-")),
                status = escape(&s.status),
                duration = duration(s.duration_ms),
                steps = s.steps,
                attempts = s.attempts,
                failed = s.failed_attempts,
                corr = escape(s.correlation_id.as_deref().unwrap_or("")),
            );
        }
        out.push_str("</tbody></table>\n");
    }
    for t in timelines {
        waterfall(&mut out, t);
    }
    out.push_str("</body></html>\n");
    out
}

fn waterfall(out: &mut String, t: &TaskTimeline) {
    let s = &t.summary;
    let total = s.duration_ms.max(f64::MIN_POSITIVE);
    let _ = write!(
        out,
        "<section class=\"timeline\" id=\"task-{anchor}\" data-task-id=\"{id}\" data-attempts=\"{attempts}\">\n<h2>{name} <code>{id}</code> <span class=\"status-{status_class}\">{status}</span> · {duration} · <a href=\"/tasks/{anchor}\">page</a> · <a href=\"/tasks/{anchor}.json\">JSON</a></h2>\n<p class=\"meta\">started {started} · trace {trace}{corr}</p>\n",
        anchor = path_segment(&s.task_id),
        id = escape(&s.task_id),
        attempts = s.attempts,
        name = escape(&s.task_name),
        status_class = escape(&s.status.replace(' ', "-")),
        status = escape(&s.status),
        duration = duration(s.duration_ms),
        started = s.started_at,
        trace = escape(&s.trace_id),
        corr = s
            .correlation_id
            .as_deref()
            .map(|c| format!(" · correlation id <code>{}</code>", escape(c)))
            .unwrap_or_default(),
    );
    let _ = writeln!(
        out,
        "<div class=\"axis\"><span></span><div class=\"scale\"><span>0</span><span>{}</span><span>{}</span></div></div>",
        duration(total / 2.0),
        duration(total)
    );
    for lane in &t.steps {
        let _ = writeln!(
            out,
            "<div class=\"step\" data-step=\"{name}\"><div class=\"step-name\">{name}</div>",
            name = escape(&lane.step_name)
        );
        for a in &lane.attempts {
            bar(out, a, total);
        }
        out.push_str("</div>\n");
    }
    if t.dropped_spans > 0 {
        let _ = writeln!(
            out,
            "<p class=\"meta\">{} more spans of this task were not kept (the store keeps {} per trace).</p>",
            t.dropped_spans,
            SpanStore::MAX_SPANS_PER_TRACE
        );
    }
    out.push_str("</section>\n");
}

fn bar(out: &mut String, a: &AttemptBar, total_ms: f64) {
    let left = (a.offset_ms / total_ms * 100.0).clamp(0.0, 100.0);
    let width = (a.duration_ms / total_ms * 100.0).clamp(0.0, 100.0 - left);
    let attempt = a
        .attempt_number
        .map_or_else(|| "attempt".to_owned(), |n| format!("attempt {n}"));
    let class = match a.status.as_str() {
        "error" => "failed",
        "ok" => "ok",
        _ => "unset",
    };
    let mut hover = format!("{attempt}: {}, {}", a.status, duration(a.duration_ms));
    if let Some(class) = &a.error_class {
        let _ = write!(hover, "\n{class}");
    }
    if let Some(message) = &a.error_message {
        let _ = write!(hover, ": {message}");
    }
    for (k, v) in &a.attributes {
        let _ = write!(hover, "\n{k} = {v}");
    }
    let _ = write!(
        out,
        "<div class=\"row\"><div class=\"label\">{attempt}</div><div class=\"track\"><details class=\"bar {class}\" data-attempt=\"{number}\" data-status=\"{status}\" style=\"left:{left:.3}%;width:{width:.3}%\"><summary title=\"{hover}\">{duration}</summary><div class=\"detail\">",
        number = a.attempt_number.map(|n| n.to_string()).unwrap_or_default(),
        status = escape(&a.status),
        hover = escape(&hover),
        duration = duration(a.duration_ms),
    );
    if a.failed() {
        let _ = write!(
            out,
            "<p class=\"error\"><span class=\"error-class\">{}</span>: <span class=\"error-message\">{}</span></p>",
            escape(a.error_class.as_deref().unwrap_or("error")),
            escape(a.error_message.as_deref().unwrap_or(""))
        );
    }
    out.push_str("<table>");
    let _ = write!(
        out,
        "<tr><td>start</td><td>+{}</td></tr>",
        duration(a.offset_ms)
    );
    for (k, v) in &a.attributes {
        let _ = write!(out, "<tr><td>{}</td><td>{}</td></tr>", escape(k), escape(v));
    }
    if !a.events.is_empty() {
        let _ = write!(
            out,
            "<tr><td>events</td><td>{}</td></tr>",
            escape(&a.events.join(", "))
        );
    }
    out.push_str("</table></div></details></div></div>\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_everything_a_span_attribute_could_use_to_break_out() {
        assert_eq!(
            escape(r#"<script>alert("x")</script> & 'y'"#),
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;y&#39;"
        );
        assert_eq!(path_segment("order 1/2?#"), "order%201%2F2%3F%23");
    }
}
