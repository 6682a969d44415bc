use std::rc::Rc;

use tasker_telemetry::{step_handler, Step};

async fn charge() {}

struct ChargeCard;

#[step_handler]
impl ChargeCard {
    async fn process(&self, _step: &Step) -> Result<u64, std::io::Error> {
        let attempts = Rc::new(1);
        charge().await;
        Ok(*attempts)
    }
}

fn main() {}
