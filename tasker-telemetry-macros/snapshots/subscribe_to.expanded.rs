impl Pager {
    fn handle_task_completed(&self, event: &Event<'_>) {}
    fn handle_step(&self, event: &Event<'_>) {}
    fn handle_fraud_flagged(&self, event: &Event<'_>) {}
}
#[automatically_derived]
impl ::tasker_telemetry::__private_v0_1::Subscriber for Pager {
    fn on_event(&self, event: &::tasker_telemetry::__private_v0_1::Event<'_>) {
        let name = ::tasker_telemetry::__private_v0_1::Event::name(event);
        if name == ::tasker_telemetry::__private_v0_1::names::TASK_COMPLETED {
            let handler: fn(&Self, &::tasker_telemetry::__private_v0_1::Event<'_>) = Self::handle_task_completed;
            handler(self, event);
            return;
        }
        if ::tasker_telemetry::__private_v0_1::is_named(
            event,
            <FraudFlagged as ::tasker_telemetry::__private_v0_1::EventPayload>::NAME,
        ) {
            let handler: fn(&Self, &::tasker_telemetry::__private_v0_1::Event<'_>) = Self::handle_fraud_flagged;
            handler(self, event);
            return;
        }
        if ::tasker_telemetry::__private_v0_1::pattern_matches("step.*", name) {
            let handler: fn(&Self, &::tasker_telemetry::__private_v0_1::Event<'_>) = Self::handle_step;
            handler(self, event);
            return;
        }
        let _ = name;
    }
}
::tasker_telemetry::__private_v0_1::inventory::submit! {
    ::tasker_telemetry::__private_v0_1::SubscriberDescriptor { name : "Pager", type_path
    : ::core::concat!(::core::module_path!(), "::", "Pager"), events : &
    ["task.completed", "step.*", < FraudFlagged as
    ::tasker_telemetry::__private_v0_1::EventPayload > ::NAME], file : ::core::file!(),
    line : ::core::line!(), constructor :
    ::core::option::Option::Some(::tasker_telemetry::__private_v0_1::construct:: < Pager
    >), }
}
