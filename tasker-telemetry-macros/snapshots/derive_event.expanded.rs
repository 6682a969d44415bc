#[automatically_derived]
impl ::tasker_telemetry::__private_v0_1::EventPayload for FraudFlagged {
    const NAME: &'static str = "orders.fraud_flagged";
    fn event_name() -> ::core::option::Option<
        ::tasker_telemetry::__private_v0_1::EventName,
    > {
        static NAME: ::tasker_telemetry::__private_v0_1::OnceLock<
            ::core::option::Option<::tasker_telemetry::__private_v0_1::EventName>,
        > = ::tasker_telemetry::__private_v0_1::OnceLock::new();
        *NAME
            .get_or_init(|| ::tasker_telemetry::__private_v0_1::EventName::lookup(
                "orders.fraud_flagged",
            ))
    }
}
::tasker_telemetry::__private_v0_1::inventory::submit! {
    ::tasker_telemetry::__private_v0_1::CustomEventDeclaration { name :
    "orders.fraud_flagged", description : "A fraud check flagged an order.", fields : &
    [::tasker_telemetry::__private_v0_1::FieldDescriptor::new("order_id", "u64",
    "The flagged order.")], file : ::core::file!(), line : ::core::line!(), }
}
