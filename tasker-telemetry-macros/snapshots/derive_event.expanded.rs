#[automatically_derived]
impl ::tasker_telemetry::__private::EventPayload for FraudFlagged {
    const NAME: &'static str = "orders.fraud_flagged";
    fn event_name() -> ::core::option::Option<::tasker_telemetry::__private::EventName> {
        static NAME: ::tasker_telemetry::__private::OnceLock<
            ::core::option::Option<::tasker_telemetry::__private::EventName>,
        > = ::tasker_telemetry::__private::OnceLock::new();
        *NAME
            .get_or_init(|| ::tasker_telemetry::__private::EventName::lookup(
                "orders.fraud_flagged",
            ))
    }
}
::tasker_telemetry::__private::inventory::submit! {
    ::tasker_telemetry::__private::CustomEventDeclaration { name :
    "orders.fraud_flagged", description : "A fraud check flagged an order.", fields : &
    [::tasker_telemetry::__private::FieldDescriptor::new("order_id", "u64",
    "The flagged order.")], file : ::core::file!(), line : ::core::line!(), }
}
