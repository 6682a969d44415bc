pub async fn fetch_cart(task: &Task, step: &Step) -> Result<Cart, StepError> {
    load(task.context()).await
}
///The step handler `#[step_handler]` generated from [`fetch_cart`].
#[derive(Debug, Clone, Copy, Default)]
pub struct FetchCart;
#[automatically_derived]
impl ::tasker_telemetry::__private::StepHandler for FetchCart {
    fn name(&self) -> &'static str {
        "fetch_cart"
    }
    fn retry_limit(&self) -> ::tasker_telemetry::__private::Option<u32> {
        ::tasker_telemetry::__private::Option::None
    }
    fn handle<'tasker>(
        &'tasker self,
        task: &'tasker ::tasker_telemetry::__private::Task,
        _sequence: &'tasker ::tasker_telemetry::__private::Sequence,
        step: &'tasker ::tasker_telemetry::__private::Step,
    ) -> ::tasker_telemetry::__private::Handled<'tasker> {
        const INFO: ::tasker_telemetry::__private::HandlerInfo = ::tasker_telemetry::__private::HandlerInfo {
            name: "fetch_cart",
            retry_limit: ::tasker_telemetry::__private::Option::None,
        };
        ::tasker_telemetry::__private::Handled::from_boxed(
            ::tasker_telemetry::__private::Box::pin(
                ::tasker_telemetry::__private::instrument_async(
                    &INFO,
                    step,
                    fetch_cart(task, step),
                    |error| {
                        #[allow(unused_imports)]
                        use ::tasker_telemetry::__private::error_kinds::*;
                        #[allow(clippy::needless_borrow)]
                        let error = (&&&::tasker_telemetry::__private::ErrorKind(&error))
                            .to_step_error();
                        error
                    },
                ),
            ),
        )
    }
}
::tasker_telemetry::__private::inventory::submit! {
    ::tasker_telemetry::__private::HandlerDescriptor { name : "fetch_cart", type_path :
    ::core::concat!(::core::module_path!(), "::", "FetchCart"), retry_limit :
    ::tasker_telemetry::__private::Option::None, file : ::core::file!(), line :
    ::core::line!(), }
}
