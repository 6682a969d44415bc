pub async fn fetch_cart(task: &Task, step: &Step) -> Result<Cart, StepError> {
    load(task.context()).await
}
///The step handler `#[step_handler]` generated from [`fetch_cart`].
#[derive(Debug, Clone, Copy, Default)]
pub struct FetchCart;
#[automatically_derived]
impl ::tasker_telemetry::__private_v0_1::StepHandler for FetchCart {
    fn name(&self) -> &'static str {
        "fetch_cart"
    }
    fn retry_limit(&self) -> ::tasker_telemetry::__private_v0_1::Option<u32> {
        ::tasker_telemetry::__private_v0_1::Option::None
    }
    fn handle<'tasker>(
        &'tasker self,
        task: &'tasker ::tasker_telemetry::__private_v0_1::Task,
        _sequence: &'tasker ::tasker_telemetry::__private_v0_1::Sequence,
        step: &'tasker ::tasker_telemetry::__private_v0_1::Step,
    ) -> ::tasker_telemetry::__private_v0_1::Handled<'tasker> {
        const INFO: ::tasker_telemetry::__private_v0_1::HandlerInfo = ::tasker_telemetry::__private_v0_1::HandlerInfo {
            name: "fetch_cart",
            retry_limit: ::tasker_telemetry::__private_v0_1::Option::None,
        };
        ::tasker_telemetry::__private_v0_1::Handled::from_boxed(
            ::tasker_telemetry::__private_v0_1::Box::pin(
                ::tasker_telemetry::__private_v0_1::instrument_async(
                    &INFO,
                    step,
                    fetch_cart(task, step),
                    |error| {
                        #[allow(unused_imports)]
                        use ::tasker_telemetry::__private_v0_1::error_kinds::*;
                        #[allow(clippy::needless_borrow)]
                        let error = (&&&::tasker_telemetry::__private_v0_1::ErrorKind(
                            &error,
                        ))
                            .to_step_error();
                        error
                    },
                ),
            ),
        )
    }
}
::tasker_telemetry::__private_v0_1::inventory::submit! {
    ::tasker_telemetry::__private_v0_1::HandlerDescriptor { name : "fetch_cart",
    type_path : ::core::concat!(::core::module_path!(), "::", "FetchCart"), retry_limit :
    ::tasker_telemetry::__private_v0_1::Option::None, objective :
    ::tasker_telemetry::__private_v0_1::Option::None, file : ::core::file!(), line :
    ::core::line!(), }
}
