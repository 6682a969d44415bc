//! Typed payloads carried by events, with Tasker's standard keys.
//!
//! Every payload answers [`get`](Payload::get) by key without allocating, serialises to the flat
//! JSON object Tasker's subscribers expect, and lists its fields (for the catalog).

use std::borrow::Cow;
use std::sync::Arc;

use serde::Serialize;

use crate::timestamp::Timestamp;

/// A borrowed, typed view of one payload value, as returned by [`Event::get`](crate::Event::get).
///
/// ```
/// use tasker_telemetry::payload::Value;
///
/// let v = Value::Str("charge_card");
/// assert_eq!(v.as_str(), Some("charge_card"));
/// assert_eq!(Value::U64(3).as_f64(), Some(3.0));
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum Value<'a> {
    /// Text.
    Str(&'a str),
    /// An unsigned integer (counts, attempt numbers).
    U64(u64),
    /// A float (durations in seconds, rates).
    F64(f64),
    /// A flag.
    Bool(bool),
    /// A wall-clock time.
    Timestamp(Timestamp),
    /// A list of names (for example the viable steps of an orchestration pass).
    List(&'a [Arc<str>]),
    /// Arbitrary JSON (task context, step results), already passed through the parameter filter.
    Json(&'a serde_json::Value),
}

impl<'a> Value<'a> {
    /// The text, if this is text (or a JSON string).
    pub fn as_str(&self) -> Option<&'a str> {
        match *self {
            Value::Str(s) => Some(s),
            Value::Json(serde_json::Value::String(s)) => Some(s),
            _ => None,
        }
    }

    /// The value as a float when it is numeric, or text that parses as a number.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::U64(n) => Some(n as f64),
            Value::F64(n) => Some(n),
            Value::Str(s) => s.trim().parse().ok(),
            Value::Json(serde_json::Value::Number(n)) => n.as_f64(),
            Value::Json(serde_json::Value::String(s)) => s.trim().parse().ok(),
            _ => None,
        }
    }

    /// The value as an unsigned integer when it is a whole, non-negative number.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Value::U64(n) => Some(n),
            Value::F64(n) if n >= 0.0 && n.fract() == 0.0 && n <= u64::MAX as f64 => Some(n as u64),
            Value::Str(s) => s.trim().parse().ok(),
            Value::Json(serde_json::Value::Number(n)) => n.as_u64(),
            _ => None,
        }
    }

    /// The flag, if this is a boolean.
    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            Value::Bool(b) => Some(b),
            Value::Json(serde_json::Value::Bool(b)) => Some(*b),
            _ => None,
        }
    }
}

/// How a field's value may be read: the conversion from a payload field to a [`Value`].
trait FieldValue {
    fn value(&self) -> Option<Value<'_>>;
}

impl FieldValue for Arc<str> {
    fn value(&self) -> Option<Value<'_>> {
        Some(Value::Str(self))
    }
}
impl FieldValue for Cow<'static, str> {
    fn value(&self) -> Option<Value<'_>> {
        Some(Value::Str(self))
    }
}
impl FieldValue for u32 {
    fn value(&self) -> Option<Value<'_>> {
        Some(Value::U64(u64::from(*self)))
    }
}
impl FieldValue for u64 {
    fn value(&self) -> Option<Value<'_>> {
        Some(Value::U64(*self))
    }
}
impl FieldValue for f64 {
    fn value(&self) -> Option<Value<'_>> {
        Some(Value::F64(*self))
    }
}
impl FieldValue for bool {
    fn value(&self) -> Option<Value<'_>> {
        Some(Value::Bool(*self))
    }
}
impl FieldValue for Timestamp {
    fn value(&self) -> Option<Value<'_>> {
        Some(Value::Timestamp(*self))
    }
}
impl FieldValue for Arc<[Arc<str>]> {
    fn value(&self) -> Option<Value<'_>> {
        Some(Value::List(self))
    }
}
impl FieldValue for Arc<serde_json::Value> {
    fn value(&self) -> Option<Value<'_>> {
        Some(Value::Json(self))
    }
}
impl FieldValue for serde_json::Value {
    fn value(&self) -> Option<Value<'_>> {
        Some(Value::Json(self))
    }
}
impl FieldValue for EntityKind {
    fn value(&self) -> Option<Value<'_>> {
        Some(Value::Str(self.as_str()))
    }
}
impl<T: FieldValue> FieldValue for Option<T> {
    fn value(&self) -> Option<Value<'_>> {
        self.as_ref().and_then(FieldValue::value)
    }
}

/// One field of a payload, as listed in the catalog.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct FieldDescriptor {
    /// The key, as passed to [`Event::get`](crate::Event::get).
    pub name: &'static str,
    /// The value's type, in words (`string`, `integer`, `seconds`, `timestamp`, `json`, ...).
    #[serde(rename = "type")]
    pub ty: &'static str,
    /// What the field means.
    pub description: &'static str,
}

impl FieldDescriptor {
    /// A field descriptor; `const` so that declarations can live in statics.
    pub const fn new(name: &'static str, ty: &'static str, description: &'static str) -> Self {
        Self {
            name,
            ty,
            description,
        }
    }
}

/// Declares a payload struct together with its key lookup and field list, so the three can never
/// disagree. An optional leading `identity` block declares the keys that name the payload's
/// subject: they live in their own struct behind one `Arc`, shared by every event about that
/// subject, and serialise flat among the other fields.
macro_rules! payload_struct {
    (
        $(#[$meta:meta])*
        pub struct $name:ident $(<$lt:lifetime>)? {
            $(
                @identity
                $(#[$imeta:meta])*
                $ident:ident {
                    $(
                        #[doc = $idoc:literal]
                        #[ty = $ity:literal]
                        pub $ifield:ident : $ifty:ty,
                    )*
                }
            )?
            $(
                #[doc = $doc:literal]
                #[ty = $ty:literal]
                $(#[$fmeta:meta])*
                pub $field:ident : $fty:ty,
            )*
        }
    ) => {
        $(
            $(#[$imeta])*
            #[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
            #[non_exhaustive]
            pub struct $ident {
                $(
                    #[doc = $idoc]
                    pub $ifield: $ifty,
                )*
            }
        )?

        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Serialize)]
        #[non_exhaustive]
        pub struct $name $(<$lt>)? {
            $(
                #[doc = concat!(
                    "The keys naming the subject ([`", stringify!($ident), "`]), shared by its \
                     events: borrowed from the scope by the events it lends to synchronous \
                     subscribers, owned (one counted reference) otherwise."
                )]
                #[serde(flatten)]
                pub identity: Cow<$lt, Arc<$ident>>,
            )?
            $(
                #[doc = $doc]
                $(#[$fmeta])*
                pub $field: $fty,
            )*
        }

        impl $(<$lt>)? $name $(<$lt>)? {
            /// Every field of this payload, in serialisation order.
            pub const FIELDS: &'static [FieldDescriptor] = &[
                $($(FieldDescriptor::new(stringify!($ifield), $ity, $idoc.trim_ascii()),)*)?
                $(FieldDescriptor::new(stringify!($field), $ty, $doc.trim_ascii()),)*
            ];

            /// The value under `key`, or `None` when the key is unknown or the field is unset.
            pub fn get(&self, key: &str) -> Option<Value<'_>> {
                match key {
                    $($(stringify!($ifield) => FieldValue::value(&self.identity.$ifield),)*)?
                    $(stringify!($field) => FieldValue::value(&self.$field),)*
                    _ => None,
                }
            }
        }
    };
}

/// Whether a transition or error concerns a task or one of its steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EntityKind {
    /// A task (a run of a workflow).
    Task,
    /// A workflow step.
    Step,
}

impl EntityKind {
    /// `"task"` or `"step"`.
    pub fn as_str(&self) -> &'static str {
        match self {
            EntityKind::Task => "task",
            EntityKind::Step => "step",
        }
    }
}

payload_struct! {
    /// Payload of task lifecycle events (`task.*`, `observability.task.*`).
    ///
    /// ```
    /// use tasker_telemetry::payload::TaskPayload;
    ///
    /// let p = TaskPayload::new("42", "order_processing");
    /// assert_eq!(p.get("task_name").and_then(|v| v.as_str()), Some("order_processing"));
    /// ```
    pub struct TaskPayload {
        /// The task's id.
        #[ty = "string"]
        pub task_id: Arc<str>,
        /// The task's (workflow's) name.
        #[ty = "string"]
        pub task_name: Arc<str>,
        /// When the task started.
        #[ty = "timestamp"]
        #[serde(skip_serializing_if = "Option::is_none")]
        pub started_at: Option<Timestamp>,
        /// When the task reached this state.
        #[ty = "timestamp"]
        #[serde(skip_serializing_if = "Option::is_none")]
        pub completed_at: Option<Timestamp>,
        /// Wall time from start to this event, in seconds (monotonic clock).
        #[ty = "seconds"]
        #[serde(skip_serializing_if = "Option::is_none")]
        pub execution_duration: Option<f64>,
        /// Steps in the task.
        #[ty = "integer"]
        #[serde(skip_serializing_if = "Option::is_none")]
        pub total_steps: Option<u64>,
        /// Steps completed so far.
        #[ty = "integer"]
        #[serde(skip_serializing_if = "Option::is_none")]
        pub completed_steps: Option<u64>,
        /// Steps that failed for good.
        #[ty = "integer"]
        #[serde(skip_serializing_if = "Option::is_none")]
        pub failed_steps: Option<u64>,
        /// Steps not yet run.
        #[ty = "integer"]
        #[serde(skip_serializing_if = "Option::is_none")]
        pub pending_steps: Option<u64>,
        /// The task's context, after the parameter filter.
        #[ty = "json"]
        #[serde(skip_serializing_if = "Option::is_none")]
        pub context: Option<Arc<serde_json::Value>>,
    }
}

impl TaskPayload {
    /// A payload with the identifying keys set and everything else empty.
    pub fn new(task_id: impl Into<Arc<str>>, task_name: impl Into<Arc<str>>) -> Self {
        Self {
            task_id: task_id.into(),
            task_name: task_name.into(),
            started_at: None,
            completed_at: None,
            execution_duration: None,
            total_steps: None,
            completed_steps: None,
            failed_steps: None,
            pending_steps: None,
            context: None,
        }
    }
}

payload_struct! {
    /// Payload of step lifecycle events (`step.*`, most `observability.step.*`).
    ///
    /// ```
    /// use tasker_telemetry::payload::StepPayload;
    ///
    /// let p = StepPayload::new("42", "order_processing", "42-3", "charge_card");
    /// assert_eq!(p.get("attempt_number").and_then(|v| v.as_u64()), Some(1));
    /// ```
    pub struct StepPayload<'a> {
        @identity
        /// The keys naming one step of one task: built once per step, and borrowed by the
        /// events lent to synchronous subscribers (shared, one counted reference each, by the
        /// events kept longer).
        ///
        /// ```
        /// use tasker_telemetry::payload::{StepIdentity, StepPayload};
        ///
        /// let p = StepPayload::new("42", "order_processing", "42-3", "charge_card");
        /// let identity: &StepIdentity = &p.identity;
        /// assert_eq!(&*identity.step_name, "charge_card");
        /// ```
        StepIdentity {
            /// The owning task's id.
            #[ty = "string"]
            pub task_id: Arc<str>,
            /// The owning task's name.
            #[ty = "string"]
            pub task_name: Arc<str>,
            /// The step's id.
            #[ty = "string"]
            pub step_id: Arc<str>,
            /// The step's name.
            #[ty = "string"]
            pub step_name: Arc<str>,
        }
        /// Which attempt this is, from 1.
        #[ty = "integer"]
        pub attempt_number: u32,
        /// How many attempts the step may make in all.
        #[ty = "integer"]
        pub retry_limit: u32,
        /// When this attempt started.
        #[ty = "timestamp"]
        #[serde(skip_serializing_if = "Option::is_none")]
        pub started_at: Option<Timestamp>,
        /// When this attempt ended.
        #[ty = "timestamp"]
        #[serde(skip_serializing_if = "Option::is_none")]
        pub completed_at: Option<Timestamp>,
        /// How long `process()` ran, in seconds (monotonic clock).
        #[ty = "seconds"]
        #[serde(skip_serializing_if = "Option::is_none")]
        pub execution_duration: Option<f64>,
        /// The delay before the next attempt, in seconds (backoff events).
        #[ty = "seconds"]
        #[serde(skip_serializing_if = "Option::is_none")]
        pub backoff_seconds: Option<f64>,
        /// Why the step was skipped (skip events).
        #[ty = "string"]
        #[serde(skip_serializing_if = "Option::is_none")]
        pub skip_reason: Option<Cow<'static, str>>,
        /// The step's inputs, after the parameter filter.
        #[ty = "json"]
        #[serde(skip_serializing_if = "Option::is_none")]
        pub inputs: Option<Arc<serde_json::Value>>,
        /// What `process()` returned, after the parameter filter.
        #[ty = "json"]
        #[serde(skip_serializing_if = "Option::is_none")]
        pub step_results: Option<serde_json::Value>,
    }
}

impl StepIdentity {
    /// The keys of step `step_id` (`step_name`) of task `task_id` (`task_name`).
    pub fn new(
        task_id: impl Into<Arc<str>>,
        task_name: impl Into<Arc<str>>,
        step_id: impl Into<Arc<str>>,
        step_name: impl Into<Arc<str>>,
    ) -> Self {
        Self {
            task_id: task_id.into(),
            task_name: task_name.into(),
            step_id: step_id.into(),
            step_name: step_name.into(),
        }
    }
}

impl StepPayload<'static> {
    /// A payload for attempt 1 with the identifying keys set and everything else empty.
    #[inline]
    pub fn new(
        task_id: impl Into<Arc<str>>,
        task_name: impl Into<Arc<str>>,
        step_id: impl Into<Arc<str>>,
        step_name: impl Into<Arc<str>>,
    ) -> Self {
        Self::for_step(Arc::new(StepIdentity::new(
            task_id, task_name, step_id, step_name,
        )))
    }

    /// A payload for attempt 1 of the step `identity` names, sharing it.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use tasker_telemetry::payload::{StepIdentity, StepPayload};
    ///
    /// let identity = Arc::new(StepIdentity::new("42", "order_processing", "42-3", "charge_card"));
    /// let p = StepPayload::for_step(identity.clone());
    /// assert!(Arc::ptr_eq(&p.identity, &identity));
    /// ```
    #[inline]
    pub fn for_step(identity: Arc<StepIdentity>) -> Self {
        StepPayload::lending(Cow::Owned(identity))
    }
}

impl<'a> StepPayload<'a> {
    /// A payload for attempt 1 of the step `identity` names, borrowing it: an event built from
    /// it and lent to synchronous subscribers costs no counted reference.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use tasker_telemetry::payload::{StepIdentity, StepPayload};
    ///
    /// let identity = Arc::new(StepIdentity::new("42", "order_processing", "42-3", "charge_card"));
    /// let p = StepPayload::borrowing(&identity);
    /// assert_eq!(Arc::strong_count(&identity), 1);
    /// assert_eq!(p.get("step_name").and_then(|v| v.as_str()), Some("charge_card"));
    /// ```
    #[inline]
    pub fn borrowing(identity: &'a Arc<StepIdentity>) -> Self {
        Self::lending(Cow::Borrowed(identity))
    }

    /// The same payload owning its identity (one counted reference when it was borrowed), to
    /// keep beyond the borrow.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use tasker_telemetry::payload::{StepIdentity, StepPayload};
    ///
    /// let identity = Arc::new(StepIdentity::new("42", "order_processing", "42-3", "charge_card"));
    /// let kept: StepPayload<'static> = StepPayload::borrowing(&identity).into_owned();
    /// assert_eq!(Arc::strong_count(&identity), 2);
    /// # drop(kept);
    /// ```
    pub fn into_owned(self) -> StepPayload<'static> {
        StepPayload {
            identity: Cow::Owned(self.identity.into_owned()),
            attempt_number: self.attempt_number,
            retry_limit: self.retry_limit,
            started_at: self.started_at,
            completed_at: self.completed_at,
            execution_duration: self.execution_duration,
            backoff_seconds: self.backoff_seconds,
            skip_reason: self.skip_reason,
            inputs: self.inputs,
            step_results: self.step_results,
        }
    }

    #[inline]
    fn lending(identity: Cow<'a, Arc<StepIdentity>>) -> Self {
        Self {
            identity,
            attempt_number: 1,
            retry_limit: 1,
            started_at: None,
            completed_at: None,
            execution_duration: None,
            backoff_seconds: None,
            skip_reason: None,
            inputs: None,
            step_results: None,
        }
    }
}

payload_struct! {
    /// Payload of failure events (`step.failed`, `task.failed`, `workflow.step_execution_failed`,
    /// `observability.step.max_retries_reached`).
    ///
    /// ```
    /// use tasker_telemetry::payload::ErrorPayload;
    ///
    /// let mut p = ErrorPayload::for_task("42", "order_processing", "card declined", "PaymentError");
    /// p.attempt_number = Some(3);
    /// p.retry_limit = Some(3);
    /// assert!(p.is_final_failure());
    /// ```
    pub struct ErrorPayload {
        /// The task's id.
        #[ty = "string"]
        pub task_id: Arc<str>,
        /// The task's name.
        #[ty = "string"]
        pub task_name: Arc<str>,
        /// The failed step's id (absent for task-level failures).
        #[ty = "string"]
        #[serde(skip_serializing_if = "Option::is_none")]
        pub step_id: Option<Arc<str>>,
        /// The failed step's name (absent for task-level failures).
        #[ty = "string"]
        #[serde(skip_serializing_if = "Option::is_none")]
        pub step_name: Option<Arc<str>>,
        /// The error's message (`Display`), after the parameter filter.
        #[ty = "string"]
        pub error_message: Arc<str>,
        /// The concrete error type's name, or `panic`.
        #[ty = "string"]
        pub error_class: Cow<'static, str>,
        /// A captured backtrace, when there is one.
        #[ty = "string"]
        #[serde(skip_serializing_if = "Option::is_none")]
        pub backtrace: Option<Arc<str>>,
        /// Which attempt failed, from 1.
        #[ty = "integer"]
        #[serde(skip_serializing_if = "Option::is_none")]
        pub attempt_number: Option<u32>,
        /// How many attempts the step may make in all.
        #[ty = "integer"]
        #[serde(skip_serializing_if = "Option::is_none")]
        pub retry_limit: Option<u32>,
        /// When the failed attempt started.
        #[ty = "timestamp"]
        #[serde(skip_serializing_if = "Option::is_none")]
        pub started_at: Option<Timestamp>,
        /// When it failed.
        #[ty = "timestamp"]
        #[serde(skip_serializing_if = "Option::is_none")]
        pub completed_at: Option<Timestamp>,
        /// How long the attempt ran, in seconds (monotonic clock).
        #[ty = "seconds"]
        #[serde(skip_serializing_if = "Option::is_none")]
        pub execution_duration: Option<f64>,
        /// The step's inputs, after the parameter filter.
        #[ty = "json"]
        #[serde(skip_serializing_if = "Option::is_none")]
        pub inputs: Option<Arc<serde_json::Value>>,
        /// Steps in the task (task-level failures).
        #[ty = "integer"]
        #[serde(skip_serializing_if = "Option::is_none")]
        pub total_steps: Option<u64>,
        /// Steps completed before the failure (task-level failures).
        #[ty = "integer"]
        #[serde(skip_serializing_if = "Option::is_none")]
        pub completed_steps: Option<u64>,
        /// Steps that failed for good (task-level failures).
        #[ty = "integer"]
        #[serde(skip_serializing_if = "Option::is_none")]
        pub failed_steps: Option<u64>,
        /// Steps never run (task-level failures).
        #[ty = "integer"]
        #[serde(skip_serializing_if = "Option::is_none")]
        pub pending_steps: Option<u64>,
    }
}

impl ErrorPayload {
    /// A task-level failure payload.
    pub fn for_task(
        task_id: impl Into<Arc<str>>,
        task_name: impl Into<Arc<str>>,
        error_message: impl Into<Arc<str>>,
        error_class: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self {
            task_id: task_id.into(),
            task_name: task_name.into(),
            step_id: None,
            step_name: None,
            error_message: error_message.into(),
            error_class: error_class.into(),
            backtrace: None,
            attempt_number: None,
            retry_limit: None,
            started_at: None,
            completed_at: None,
            execution_duration: None,
            inputs: None,
            total_steps: None,
            completed_steps: None,
            failed_steps: None,
            pending_steps: None,
        }
    }

    /// Whether this failure used up the step's last attempt (`attempt_number >= retry_limit`).
    pub fn is_final_failure(&self) -> bool {
        matches!((self.attempt_number, self.retry_limit), (Some(a), Some(l)) if a >= l)
    }
}

payload_struct! {
    /// Payload of orchestration events (`workflow.*`, `observability.step.find_viable`).
    ///
    /// ```
    /// use tasker_telemetry::payload::OrchestrationPayload;
    ///
    /// let mut p = OrchestrationPayload::new("42", "order_processing");
    /// p.step_names = Some(vec!["fetch_cart".into()].into());
    /// assert!(p.get("step_names").is_some());
    /// ```
    pub struct OrchestrationPayload {
        /// The task's id.
        #[ty = "string"]
        pub task_id: Arc<str>,
        /// The task's name.
        #[ty = "string"]
        pub task_name: Arc<str>,
        /// The steps concerned (viable steps, a batch, the step that completed).
        #[ty = "list"]
        #[serde(skip_serializing_if = "Option::is_none")]
        pub step_names: Option<Arc<[Arc<str>]>>,
        /// How many steps are concerned.
        #[ty = "integer"]
        #[serde(skip_serializing_if = "Option::is_none")]
        pub step_count: Option<u64>,
        /// Which orchestration pass this is, from 1.
        #[ty = "integer"]
        #[serde(skip_serializing_if = "Option::is_none")]
        pub iteration: Option<u64>,
        /// Steps in the task.
        #[ty = "integer"]
        #[serde(skip_serializing_if = "Option::is_none")]
        pub total_steps: Option<u64>,
        /// Steps completed so far.
        #[ty = "integer"]
        #[serde(skip_serializing_if = "Option::is_none")]
        pub completed_steps: Option<u64>,
        /// Steps that failed for good.
        #[ty = "integer"]
        #[serde(skip_serializing_if = "Option::is_none")]
        pub failed_steps: Option<u64>,
        /// Steps not yet run.
        #[ty = "integer"]
        #[serde(skip_serializing_if = "Option::is_none")]
        pub pending_steps: Option<u64>,
        /// How long the pass or batch took, in seconds.
        #[ty = "seconds"]
        #[serde(skip_serializing_if = "Option::is_none")]
        pub execution_duration: Option<f64>,
        /// Why this happened, in words (for example why no step is viable).
        #[ty = "string"]
        #[serde(skip_serializing_if = "Option::is_none")]
        pub reason: Option<Cow<'static, str>>,
    }
}

impl OrchestrationPayload {
    /// A payload with the identifying keys set and everything else empty.
    pub fn new(task_id: impl Into<Arc<str>>, task_name: impl Into<Arc<str>>) -> Self {
        Self {
            task_id: task_id.into(),
            task_name: task_name.into(),
            step_names: None,
            step_count: None,
            iteration: None,
            total_steps: None,
            completed_steps: None,
            failed_steps: None,
            pending_steps: None,
            execution_duration: None,
            reason: None,
        }
    }
}

payload_struct! {
    /// Payload of state-transition events (`task.before_transition`, `step.before_transition`).
    ///
    /// ```
    /// use tasker_telemetry::payload::{EntityKind, TransitionPayload};
    ///
    /// let p = TransitionPayload::new(EntityKind::Task, "42", "order_processing", Some("pending"), "in_progress");
    /// assert_eq!(p.get("to_state").and_then(|v| v.as_str()), Some("in_progress"));
    /// ```
    pub struct TransitionPayload {
        /// Whether a task or a step changes state.
        #[ty = "string"]
        pub entity: EntityKind,
        /// The task's id.
        #[ty = "string"]
        pub task_id: Arc<str>,
        /// The task's name.
        #[ty = "string"]
        pub task_name: Arc<str>,
        /// The step's id (step transitions).
        #[ty = "string"]
        #[serde(skip_serializing_if = "Option::is_none")]
        pub step_id: Option<Arc<str>>,
        /// The step's name (step transitions).
        #[ty = "string"]
        #[serde(skip_serializing_if = "Option::is_none")]
        pub step_name: Option<Arc<str>>,
        /// The state being left; absent for the first transition.
        #[ty = "string"]
        #[serde(skip_serializing_if = "Option::is_none")]
        pub from_state: Option<Cow<'static, str>>,
        /// The state being entered.
        #[ty = "string"]
        pub to_state: Cow<'static, str>,
    }
}

impl TransitionPayload {
    /// A transition payload for a task (set `step_id` / `step_name` for a step).
    pub fn new(
        entity: EntityKind,
        task_id: impl Into<Arc<str>>,
        task_name: impl Into<Arc<str>>,
        from_state: Option<&'static str>,
        to_state: &'static str,
    ) -> Self {
        Self {
            entity,
            task_id: task_id.into(),
            task_name: task_name.into(),
            step_id: None,
            step_name: None,
            from_state: from_state.map(Cow::Borrowed),
            to_state: Cow::Borrowed(to_state),
        }
    }
}

payload_struct! {
    /// Payload of performance events (`performance.slow_operation`, `memory.spike_detected`).
    ///
    /// ```
    /// use tasker_telemetry::payload::PerformancePayload;
    ///
    /// let p = PerformancePayload::new("step.charge_card", 2.5, 1.0, "seconds");
    /// assert_eq!(p.get("threshold").and_then(|v| v.as_f64()), Some(1.0));
    /// ```
    pub struct PerformancePayload {
        /// What was measured.
        #[ty = "string"]
        pub operation: Cow<'static, str>,
        /// The measured value.
        #[ty = "number"]
        pub value: f64,
        /// The threshold it crossed.
        #[ty = "number"]
        pub threshold: f64,
        /// The unit of `value` and `threshold` (`seconds`, `megabytes`).
        #[ty = "string"]
        pub unit: Cow<'static, str>,
        /// The task being measured, if any.
        #[ty = "string"]
        #[serde(skip_serializing_if = "Option::is_none")]
        pub task_id: Option<Arc<str>>,
        /// The task's name, if any.
        #[ty = "string"]
        #[serde(skip_serializing_if = "Option::is_none")]
        pub task_name: Option<Arc<str>>,
        /// The step being measured, if any.
        #[ty = "string"]
        #[serde(skip_serializing_if = "Option::is_none")]
        pub step_id: Option<Arc<str>>,
        /// The step's name, if any.
        #[ty = "string"]
        #[serde(skip_serializing_if = "Option::is_none")]
        pub step_name: Option<Arc<str>>,
    }
}

impl PerformancePayload {
    /// A payload for one measurement that crossed its threshold.
    pub fn new(
        operation: impl Into<Cow<'static, str>>,
        value: f64,
        threshold: f64,
        unit: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self {
            operation: operation.into(),
            value,
            threshold,
            unit: unit.into(),
            task_id: None,
            task_name: None,
            step_id: None,
            step_name: None,
        }
    }
}

/// Free-form payload of custom and telemetry-pipeline events: named JSON fields.
///
/// Values go through the parameter filter when the event is built by a scope; build it with
/// [`Fields::insert`].
///
/// ```
/// use tasker_telemetry::payload::Fields;
///
/// let mut f = Fields::new();
/// f.insert("exporter", "prometheus");
/// f.insert("metric_count", 12);
/// assert_eq!(f.get("exporter").and_then(|v| v.as_str()), Some("prometheus"));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(transparent)]
pub struct Fields(serde_json::Map<String, serde_json::Value>);

impl Fields {
    /// No fields.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `key` to `value`, replacing any earlier value.
    pub fn insert(
        &mut self,
        key: impl Into<String>,
        value: impl Into<serde_json::Value>,
    ) -> &mut Self {
        self.0.insert(key.into(), value.into());
        self
    }

    /// The value under `key`.
    pub fn get(&self, key: &str) -> Option<Value<'_>> {
        self.0.get(key).map(|v| match v {
            serde_json::Value::String(s) => Value::Str(s),
            serde_json::Value::Bool(b) => Value::Bool(*b),
            serde_json::Value::Number(n) => match n.as_u64() {
                Some(u) => Value::U64(u),
                None => n.as_f64().map_or(Value::Json(v), Value::F64),
            },
            other => Value::Json(other),
        })
    }

    /// The keys and raw JSON values.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &serde_json::Value)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// The fields as a JSON object map (for filtering in place).
    pub fn as_map_mut(&mut self) -> &mut serde_json::Map<String, serde_json::Value> {
        &mut self.0
    }
}

impl From<serde_json::Map<String, serde_json::Value>> for Fields {
    fn from(map: serde_json::Map<String, serde_json::Value>) -> Self {
        Self(map)
    }
}

/// The kinds of payload, as listed in the catalog for each event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PayloadKind {
    /// [`TaskPayload`].
    Task,
    /// [`StepPayload`].
    Step,
    /// [`ErrorPayload`].
    Error,
    /// [`OrchestrationPayload`].
    Orchestration,
    /// [`TransitionPayload`].
    Transition,
    /// [`PerformancePayload`].
    Performance,
    /// [`Fields`], with the fields the event's declaration lists.
    Fields,
}

impl PayloadKind {
    /// The payload's fields (besides `event_type` and `timestamp`, which every event has).
    /// Empty for [`PayloadKind::Fields`]: those events list their own.
    pub const fn fields(&self) -> &'static [FieldDescriptor] {
        match self {
            PayloadKind::Task => TaskPayload::FIELDS,
            PayloadKind::Step => StepPayload::FIELDS,
            PayloadKind::Error => ErrorPayload::FIELDS,
            PayloadKind::Orchestration => OrchestrationPayload::FIELDS,
            PayloadKind::Transition => TransitionPayload::FIELDS,
            PayloadKind::Performance => PerformancePayload::FIELDS,
            PayloadKind::Fields => &[],
        }
    }

    /// The kind's name in catalogs (`task`, `step`, ...).
    pub fn as_str(&self) -> &'static str {
        match self {
            PayloadKind::Task => "task",
            PayloadKind::Step => "step",
            PayloadKind::Error => "error",
            PayloadKind::Orchestration => "orchestration",
            PayloadKind::Transition => "transition",
            PayloadKind::Performance => "performance",
            PayloadKind::Fields => "fields",
        }
    }
}

/// An event's payload: one of the typed payloads, or free-form fields.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
#[non_exhaustive]
pub enum Payload<'a> {
    /// Task lifecycle.
    Task(TaskPayload),
    /// Step lifecycle.
    Step(StepPayload<'a>),
    /// A failure.
    Error(ErrorPayload),
    /// Orchestration.
    Orchestration(OrchestrationPayload),
    /// A state transition.
    Transition(TransitionPayload),
    /// A performance threshold crossed.
    Performance(PerformancePayload),
    /// Free-form fields (custom and telemetry-pipeline events).
    Fields(Fields),
}

impl Payload<'_> {
    /// The same payload owning everything it borrowed, to keep beyond the borrow (an
    /// asynchronous subscriber's copy, a recorded event).
    ///
    /// ```
    /// use tasker_telemetry::payload::{Payload, StepPayload};
    ///
    /// let kept: Payload<'static> = Payload::from(StepPayload::new("1", "t", "1-1", "s")).into_owned();
    /// assert_eq!(kept.get("step_id").and_then(|v| v.as_str()), Some("1-1"));
    /// ```
    pub fn into_owned(self) -> Payload<'static> {
        match self {
            Payload::Task(p) => Payload::Task(p),
            Payload::Step(p) => Payload::Step(p.into_owned()),
            Payload::Error(p) => Payload::Error(p),
            Payload::Orchestration(p) => Payload::Orchestration(p),
            Payload::Transition(p) => Payload::Transition(p),
            Payload::Performance(p) => Payload::Performance(p),
            Payload::Fields(p) => Payload::Fields(p),
        }
    }

    /// The value under `key`, borrowed; `None` for unknown keys and unset fields.
    pub fn get(&self, key: &str) -> Option<Value<'_>> {
        match self {
            Payload::Task(p) => p.get(key),
            Payload::Step(p) => p.get(key),
            Payload::Error(p) => p.get(key),
            Payload::Orchestration(p) => p.get(key),
            Payload::Transition(p) => p.get(key),
            Payload::Performance(p) => p.get(key),
            Payload::Fields(p) => p.get(key),
        }
    }

    /// Which kind of payload this is.
    pub fn kind(&self) -> PayloadKind {
        match self {
            Payload::Task(_) => PayloadKind::Task,
            Payload::Step(_) => PayloadKind::Step,
            Payload::Error(_) => PayloadKind::Error,
            Payload::Orchestration(_) => PayloadKind::Orchestration,
            Payload::Transition(_) => PayloadKind::Transition,
            Payload::Performance(_) => PayloadKind::Performance,
            Payload::Fields(_) => PayloadKind::Fields,
        }
    }
}

macro_rules! payload_from {
    ($($ty:ty => $variant:ident),*) => {$(
        impl<'a> From<$ty> for Payload<'a> {
            #[inline(always)]
            fn from(p: $ty) -> Self {
                Payload::$variant(p)
            }
        }
    )*};
}
payload_from!(
    TaskPayload => Task,
    StepPayload<'a> => Step,
    ErrorPayload => Error,
    OrchestrationPayload => Orchestration,
    TransitionPayload => Transition,
    PerformancePayload => Performance,
    Fields => Fields
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_declared_field_is_readable_by_key() {
        let mut step = StepPayload::new("t", "n", "s", "m");
        step.started_at = Some(Timestamp::now());
        step.completed_at = Some(Timestamp::now());
        step.execution_duration = Some(0.5);
        step.backoff_seconds = Some(1.0);
        step.skip_reason = Some("x".into());
        step.inputs = Some(Arc::new(serde_json::json!({})));
        step.step_results = Some(serde_json::json!(1));
        for f in StepPayload::FIELDS {
            assert!(step.get(f.name).is_some(), "{}", f.name);
        }
        assert_eq!(step.get("no_such_key"), None);
    }

    #[test]
    fn serialises_flat_and_skips_unset() {
        let p = Payload::from(TaskPayload::new("1", "t"));
        let json = serde_json::to_value(&p).unwrap();
        assert_eq!(json, serde_json::json!({"task_id": "1", "task_name": "t"}));
    }

    #[test]
    fn a_step_payload_serialises_its_shared_identity_flat() {
        let identity = Arc::new(StepIdentity::new("1", "t", "1-1", "s"));
        let mut p = StepPayload::for_step(identity.clone());
        p.attempt_number = 2;
        let json = serde_json::to_value(Payload::from(p.clone())).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "task_id": "1", "task_name": "t", "step_id": "1-1", "step_name": "s",
                "attempt_number": 2, "retry_limit": 1,
            })
        );
        assert_eq!(p.get("step_id").and_then(|v| v.as_str()), Some("1-1"));
        assert_eq!(Arc::strong_count(&identity), 2);
    }

    #[test]
    fn final_failure_needs_both_numbers() {
        let mut p = ErrorPayload::for_task("1", "t", "boom", "E");
        assert!(!p.is_final_failure());
        p.attempt_number = Some(2);
        p.retry_limit = Some(3);
        assert!(!p.is_final_failure());
        p.attempt_number = Some(3);
        assert!(p.is_final_failure());
    }

    #[test]
    fn numeric_views() {
        assert_eq!(Value::Str(" 2.5 ").as_f64(), Some(2.5));
        assert_eq!(Value::F64(3.0).as_u64(), Some(3));
        assert_eq!(Value::F64(-3.0).as_u64(), None);
        assert_eq!(Value::Bool(true).as_f64(), None);
    }
}
