use tasker_telemetry::step_handler;

#[step_handler]
struct FetchCart;

fn main() {}
