impl ProcessPayment {
    fn process(&self, task: &Task, step: &Step) -> Result<Charge, PaymentError> {
        charge(task, step)
    }
}
#[automatically_derived]
impl ::tasker_telemetry::__private_v0_1::StepHandler for ProcessPayment {
    fn name(&self) -> &'static str {
        "process_payment"
    }
    fn retry_limit(&self) -> ::tasker_telemetry::__private_v0_1::Option<u32> {
        ::tasker_telemetry::__private_v0_1::Option::Some(3u32)
    }
    fn handle<'tasker>(
        &'tasker self,
        task: &'tasker ::tasker_telemetry::__private_v0_1::Task,
        _sequence: &'tasker ::tasker_telemetry::__private_v0_1::Sequence,
        step: &'tasker ::tasker_telemetry::__private_v0_1::Step,
    ) -> ::tasker_telemetry::__private_v0_1::Handled<'tasker> {
        const INFO: ::tasker_telemetry::__private_v0_1::HandlerInfo = ::tasker_telemetry::__private_v0_1::HandlerInfo {
            name: "process_payment",
            retry_limit: ::tasker_telemetry::__private_v0_1::Option::Some(3u32),
        };
        ::tasker_telemetry::__private_v0_1::instrument(
            &INFO,
            step,
            || self.process(task, step),
            |error| {
                #[allow(unused_imports)]
                use ::tasker_telemetry::__private_v0_1::error_kinds::*;
                #[allow(clippy::needless_borrow)]
                let error = (&&&::tasker_telemetry::__private_v0_1::ErrorKind(&error))
                    .to_step_error();
                error
            },
        )
    }
}
::tasker_telemetry::__private_v0_1::inventory::submit! {
    ::tasker_telemetry::__private_v0_1::HandlerDescriptor { name : "process_payment",
    type_path : ::core::concat!(::core::module_path!(), "::", "ProcessPayment"),
    retry_limit : ::tasker_telemetry::__private_v0_1::Option::Some(3u32), objective :
    ::tasker_telemetry::__private_v0_1::Option::None, file : ::core::file!(), line :
    ::core::line!(), }
}
